"""The sandbox's start and stop (SPEC 16), without a browser: `@name` and `#name` escaped as
Slack escapes them, a bot that fails to start stops the sandbox with a non-zero exit, and a
wrong SANDBOX_PORT is named in one line."""

from __future__ import annotations

import os
import subprocess
import sys

from emulator.sandbox import escape_mentions, seed
from emulator.server import SlackEmulator
from storage.embedded import free_port
from tests.support import ROOT


def run_sandbox(**env: str) -> subprocess.CompletedProcess[str]:
    base = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONGODB_"))}
    return subprocess.run(
        [sys.executable, "-m", "emulator", "--with-bot"],
        cwd=ROOT,
        env={**base, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_names_typed_in_the_box_are_sent_as_slack_escapes_them() -> None:
    emu = SlackEmulator()
    seed(emu)
    assert escape_mentions(emu, "ask @bob and @leads in #general.") == (
        "ask <@U0BOB|bob> and <!subteam^S0LEADS|@leads> in <#C0GENERAL|general>."
    )
    assert escape_mentions(emu, "/flow share Lunch @carol as owner") == (
        "/flow share Lunch <@U0CAROL|carol> as owner"
    )
    # unknown names, e-mail addresses and what is already escaped stay as they are
    already = "<@U0BOB|bob> <#C0GENERAL|general> <!subteam^S0LEADS|@leads>"
    assert escape_mentions(emu, already) == already
    assert escape_mentions(emu, "mail bob@example.com about #nowhere @nobody") == (
        "mail bob@example.com about #nowhere @nobody"
    )
    assert escape_mentions(emu, "@here deploy") == "<!here> deploy"


def test_a_bot_that_fails_stops_the_sandbox_with_a_non_zero_exit() -> None:
    result = run_sandbox(SANDBOX_PORT=str(free_port()), LOG_LEVEL="LOUD")
    assert result.returncode != 0
    assert "sandbox: the bot did not start" in result.stderr
    assert "Flowbot sandbox: open" not in result.stdout


def test_a_wrong_sandbox_port_is_named_in_one_line() -> None:
    result = run_sandbox(SANDBOX_PORT="three-thousand")
    assert result.returncode != 0
    assert result.stderr.strip().splitlines() == [
        "sandbox: SANDBOX_PORT must be a port number, not 'three-thousand'"
    ]
