"""The walking skeleton: health, signatures, /flow help, settings, `python -m bot`."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest

from emulator.server import SlackEmulator
from storage.embedded import EmbeddedMongo
from tests.support import (
    ALICE,
    ROOT,
    BotHarness,
    bot_process,
    documents,
    http_request,
    make_settings,
    start_bot,
    stop_bot,
)


async def test_healthz_reports_ok_with_version(bot: BotHarness) -> None:
    status, _, body = await http_request("GET", bot.url + "/healthz")
    assert status == 200
    assert body["status"] == "ok" and body["db"] == "ok" and body["version"]


async def test_healthz_is_503_when_the_database_is_gone(
    emulator: SlackEmulator, db_name: str
) -> None:
    database = EmbeddedMongo(":memory:")
    await database.astart()
    harness = await start_bot(emulator, make_settings(emulator, database.uri, db_name))
    try:
        await database.astop()
        status, _, body = await http_request("GET", harness.url + "/healthz")
        assert status == 503
        assert body["db"] == "unreachable"
    finally:
        await stop_bot(harness)


async def test_signed_help_gets_an_ephemeral_help_card(bot: BotHarness) -> None:
    response = await bot.driver.slash(ALICE, "help")
    assert response.status == 200
    assert response.json is not None
    text = json.dumps(response.json)
    assert "/flow run" in text and "Flowbot" in text
    assert response.json.get("response_type", "ephemeral") == "ephemeral"
    empty = await bot.driver.slash(ALICE, "")
    assert empty.json is not None and "/flow help" in json.dumps(empty.json)


async def test_unknown_subcommand_gets_error_with_usage(bot: BotHarness) -> None:
    response = await bot.driver.slash(ALICE, "frobnicate now")
    assert response.status == 200 and response.json is not None
    text = json.dumps(response.json)
    assert "Unknown subcommand" in text and "Usage" in text


async def test_unbalanced_quote_is_a_usage_error(bot: BotHarness) -> None:
    response = await bot.driver.slash(ALICE, 'run "Expense approval')
    assert response.json is not None and "quote" in json.dumps(response.json)


@pytest.mark.parametrize("tamper", ["unsigned", "stale", "tampered", "wrong_secret"])
async def test_bad_signatures_get_401_and_cause_nothing(bot: BotHarness, tamper: str) -> None:
    body = "command=%2Fflow&text=help&user_id=U0ALICE&team_id=T0TEAM&channel_id=C0GENERAL"
    if tamper == "unsigned":
        headers: dict[str, str] = {}
    elif tamper == "stale":
        headers = bot.driver.sign(body, timestamp=int(time.time()) - 6 * 60)
    elif tamper == "tampered":
        headers = bot.driver.sign(body)
        body = body.replace("help", "list")
    else:
        headers = {**bot.driver.sign(body)}
        headers["X-Slack-Signature"] = "v0=" + "0" * 64
    headers["Content-Type"] = "application/x-www-form-urlencoded"
    calls_before = len(bot.emulator.calls)
    response = await bot.driver.post_raw(body.encode(), headers)
    assert response.status == 401
    assert len(bot.emulator.calls) == calls_before
    assert not any(bot.emulator.messages.values())
    assert bot.emulator.response_url_posts == []
    assert {name: docs for name, docs in (await documents(bot)).items() if docs} == {}


def test_a_wrong_setting_fails_with_one_line_naming_it(tmp_path: Path) -> None:
    env = {**os.environ, "PORT": "not-a-port", "FLOWBOT_DATA_DIR": str(tmp_path)}
    result = subprocess.run(
        [sys.executable, "-m", "bot"], env=env, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 2
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "PORT" in lines[0]


async def test_python_m_bot_starts_on_the_embedded_database_and_stops_it(
    tmp_path: Path,
) -> None:
    async with bot_process(None, tmp_path) as bot:
        assert (tmp_path / "data" / "db").is_dir()
    assert bot.process.returncode == 0
    stderr = bot.log_text()
    assert "SLACK_BOT_TOKEN" in stderr and "make sandbox" in stderr
    assert "Traceback" not in stderr


def test_package_dependency_direction() -> None:
    lint_imports = Path(sys.executable).parent / "lint-imports"
    result = subprocess.run(
        [str(lint_imports)], cwd=ROOT, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stdout + result.stderr
