"""SPEC 16 from the outside: `python -m emulator --with-bot` (what `make sandbox` runs) in a
real headless Chromium, walking the README's walkthrough. Nothing is mocked: the page, the
emulator over HTTP, the bot as `python -m bot`, the embedded database in memory.

Needs Debian's `chromium` (`apt-get install -y chromium`; `.ci/run` installs it) and
Playwright for Python (the dev extras); without them these tests are skipped, saying why."""

from __future__ import annotations

import asyncio
import os
import shutil
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import pytest

from storage.embedded import free_port
from tests.support import ROOT

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
if not Path(CHROMIUM).exists() and os.environ.get("CI"):
    pytest.fail("CI must run the browser tests: .ci/run installs chromium", pytrace=False)
if not Path(CHROMIUM).exists():
    pytest.skip(
        "no Chromium here: `apt-get install -y chromium` (.ci/run installs it) to run the "
        "sandbox's browser tests",
        allow_module_level=True,
    )
playwright_api = pytest.importorskip(
    "playwright.async_api", reason="Playwright is not installed: pip install -e '.[dev]'"
)
expect = playwright_api.expect

CHROMIUM_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]
TIMEOUT_MS = 10_000

LUNCH = """\
name: Lunch approval
description: Ask Bob whether the team lunch can happen.
kind: instant
inputs:
  - {id: place, label: Place, type: text, required: true}
notify: "#general"
steps:
  - id: ask
    type: approval
    approvers: ["<@U0BOB>"]
    title: "Lunch at {{ inputs.place }}?"
  - type: post_message
    channel: "#general"
    text: "Lunch at {{ inputs.place }} is {{ steps.ask.outcome }} by <@{{ steps.ask.responder }}>"
"""

DEPLOY = """\
name: Deploy notice
kind: automated
trigger:
  type: message
  channel: "#deploys"
  pattern: '^deploy (?P<service>[\\w-]+)'
steps:
  - type: post_message
    channel: "#deploys"
    text: "Deploying {{ trigger.groups.service }} for <@{{ trigger.user }}> :rocket:"
"""


def snapshot(folder: Path) -> dict[str, tuple[int, int]] | None:
    """Every file under `folder` with its size and mtime; None when there is no folder."""
    if not folder.exists():
        return None
    return {
        str(p.relative_to(folder)): (p.stat().st_size, p.stat().st_mtime_ns)
        for p in sorted(folder.rglob("*"))
        if p.is_file()
    }


def sandbox_env(port: int) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONGODB_"))}
    env.pop("FLOWBOT_DATA_DIR", None)
    env.update(SANDBOX_PORT=str(port), PYTHONUNBUFFERED="1")
    return env


@pytest.fixture(scope="module")
def data_before() -> dict[str, tuple[int, int]] | None:
    return snapshot(ROOT / "data")


@pytest.fixture(scope="module")
def sandbox(data_before: object, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """`python -m emulator --with-bot` in the repository, as `make sandbox` runs it."""
    port = free_port()
    log = tmp_path_factory.mktemp("sandbox") / "sandbox.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "emulator", "--with-bot"],
            cwd=ROOT,
            env=sandbox_env(port),
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + 60
        while "Flowbot sandbox: open" not in log.read_text():
            assert proc.poll() is None, f"the sandbox exited: {log.read_text()}"
            assert time.monotonic() < deadline, f"the sandbox did not start: {log.read_text()}"
            time.sleep(0.1)
        assert f"http://localhost:{port}" in log.read_text()
        yield f"http://localhost:{port}"
    finally:
        proc.terminate()
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="module")
async def browser() -> AsyncIterator[Any]:
    async with playwright_api.async_playwright() as pw:
        chromium = await pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        yield chromium
        await chromium.close()


async def open_as(browser: Any, url: str, user: str, view: str = "C0GENERAL") -> Any:
    """A tab of its own (its own sessionStorage): `user` looking at `view`."""
    context = await browser.new_context()
    context.set_default_timeout(TIMEOUT_MS)
    page = await context.new_page()
    await page.goto(f"{url}/?as={user}&view={view}")
    await expect(page.locator("#live")).to_have_text("live")
    return page


async def say(page: Any, text: str) -> None:
    box = page.get_by_role("textbox", name="message").first
    await box.fill(text)
    await box.press("Enter")
    await expect(box).to_have_value("")


async def import_flow(page: Any, source: str) -> Any:
    await say(page, "/flow import")
    dialog = page.get_by_role("dialog")
    await expect(dialog).to_be_visible()
    await dialog.get_by_role("textbox").fill(source)
    await dialog.get_by_role("button", name="Import").click()
    return dialog


# ------------------------------------------------------------------ the scenarios


async def test_the_page_lists_people_and_channels(sandbox: str, browser: Any) -> None:
    page = await open_as(browser, sandbox, "U0ALICE")
    nav = page.get_by_role("navigation", name="Workspace")
    for name in ("# general", "# finance", "# deploys"):
        await expect(nav.get_by_role("link", name=name, exact=True)).to_be_visible()
    for person in ("Alice Martin (@alice) — you", "Bob Chen (@bob)", "Ada Admin (@admin)"):
        await expect(nav.get_by_role("link", name=person)).to_be_visible()
    await expect(nav.get_by_role("link", name="Direct message with flowbot")).to_be_visible()
    await expect(page.get_by_label("You are")).to_have_value("U0ALICE")
    await page.context.close()


async def test_an_invalid_import_shows_its_error_in_the_dialog(sandbox: str, browser: Any) -> None:
    page = await open_as(browser, sandbox, "U0ALICE")
    dialog = await import_flow(page, "name: Broken\nkind: sometimes\nsteps: []\n")
    await expect(dialog.get_by_role("alert")).to_contain_text("kind")
    await expect(dialog).to_be_visible()  # still open, what was typed still there
    await expect(dialog.get_by_role("textbox")).to_have_value(
        "name: Broken\nkind: sometimes\nsteps: []\n"
    )
    await dialog.get_by_role("button", name="Cancel").click()
    await expect(dialog).to_have_count(0)
    await page.context.close()


async def test_a_valid_import_is_saved_and_app_home_lists_it(sandbox: str, browser: Any) -> None:
    page = await open_as(browser, sandbox, "U0ALICE")
    dialog = await import_flow(page, LUNCH)
    await expect(dialog).to_have_count(0)
    log = page.get_by_role("log", name="Messages")
    saved = log.locator("article", has_text="Only visible to you").filter(has_text="Lunch approval")
    await expect(saved.last).to_be_visible()
    await page.get_by_role("link", name="Flowbot · Home").click()
    await expect(page.get_by_role("region", name="App Home")).to_contain_text("Lunch approval")
    await page.context.close()


async def test_a_run_is_approved_by_another_person_and_shows_live(
    sandbox: str, browser: Any
) -> None:
    alice = await open_as(browser, sandbox, "U0ALICE")
    bob = await open_as(browser, sandbox, "U0BOB", view="D0BOB")
    await say(alice, '/flow run "Lunch approval" place=Pizzeria')
    request = bob.get_by_role("log", name="Messages").locator("article", has_text="Pizzeria")
    await expect(request.get_by_role("button", name="Approve")).to_be_visible()
    await request.get_by_role("button", name="Approve").click()
    # Alice's tab was not reloaded: the channel message arrives by server-sent events.
    said = (
        alice.get_by_role("log", name="Messages")
        .locator("article")
        .filter(has_text="Lunch at Pizzeria is approved by @bob")
    )
    await expect(said).to_be_visible()
    await expect(request).to_contain_text("Approved")
    await alice.context.close()
    await bob.context.close()


async def test_a_message_in_a_channel_triggers_a_flow(sandbox: str, browser: Any) -> None:
    page = await open_as(browser, sandbox, "U0CAROL", view="C0DEPLOYS")
    dialog = await import_flow(page, DEPLOY)
    await expect(dialog).to_have_count(0)
    await say(page, "deploy billing-api please, @bob")
    log = page.get_by_role("log", name="Messages")
    mine = log.locator("article", has_text="deploy billing-api please")
    await expect(mine.locator(".mention")).to_have_text("@bob")  # sent as <@U0BOB|bob>
    await expect(
        log.locator("article", has_text="Deploying billing-api for @carol")
    ).to_be_visible()
    await page.context.close()


async def test_a_second_sandbox_on_the_same_port_exits_with_one_line(sandbox: str) -> None:
    port = sandbox.rsplit(":", 1)[1]
    result = await asyncio.to_thread(
        subprocess.run,
        [sys.executable, "-m", "emulator", "--with-bot"],
        cwd=ROOT,
        env=sandbox_env(int(port)),
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert result.returncode != 0
    lines = (result.stdout + result.stderr).strip().splitlines()
    assert len(lines) == 1, lines
    assert f"port {port} is already in use" in lines[0]
    assert "SANDBOX_PORT" in lines[0]


def test_data_is_untouched(sandbox: str, data_before: object) -> None:
    assert snapshot(ROOT / "data") == data_before
