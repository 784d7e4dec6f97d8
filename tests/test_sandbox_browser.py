"""SPEC 16 from the outside: `python -m emulator --with-bot` (what `make sandbox` runs) in a
real headless Chromium, walking the README's walkthrough. Nothing is mocked: the page, the
emulator over HTTP, the bot as `python -m bot`, the embedded database in memory.

Needs Debian's `chromium` (`apt-get install -y chromium`; `.ci/run` installs it) and
Playwright for Python (the dev extras); without them these tests are skipped, saying why."""

from __future__ import annotations

import asyncio
import os
import re
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


SLACK_STEPS = """\
name: Deploy thread
steps:
  - {id: post, type: post_message, channel: "#general", text: "Deploy started"}
  - id: reply
    type: post_message
    channel: "{{ steps.post.channel }}"
    thread_ts: "{{ steps.post.ts }}"
    text: "step one done"
  - id: loud
    type: post_message
    channel: "{{ steps.post.channel }}"
    thread_ts: "{{ steps.post.ts }}"
    reply_broadcast: true
    text: "every step done"
  - {id: edit, type: update_message, channel: "{{ steps.post.channel }}",
     ts: "{{ steps.post.ts }}", text: "Deploy finished"}
  - {id: react, type: add_reaction, channel: "{{ steps.post.channel }}",
     ts: "{{ steps.post.ts }}", emoji: eyes}
  - {id: room, type: create_channel, name: "Deploy room"}
  - {id: invite, type: invite_to_channel, channel: "{{ steps.room.channel }}",
     users: ["{{ run.started_by }}"]}
  - {id: topic, type: set_channel_topic, channel: "{{ steps.room.channel }}",
     topic: "Where deploys are discussed"}
"""

COFFEE = """\
name: Coffee run
description: Ask who wants coffee.
steps:
  - {type: post_message, channel: "#general", text: "Coffee run!"}
"""

HOOK = """\
name: Page hook
kind: automated
trigger: {type: webhook}
steps:
  - type: post_message
    channel: "#deploys"
    text: "The webhook says {{ trigger.body.text }}"
"""

ORDER = """\
name: Lunch order
steps:
  - id: order
    type: ask
    to: ["<@U0BOB>"]
    title: "Lunch order"
    fields:
      - {id: dish, label: Dish, required: true}
      - {id: count, label: How many, type: number, required: true}
  - type: post_message
    channel: "#general"
    text: >-
      {{ steps.order.answers.count }} x {{ steps.order.answers.dish }}
      for <@{{ steps.order.responder }}>
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


async def test_thread_replies_edits_reactions_and_new_channels_show(
    sandbox: str, browser: Any
) -> None:
    page = await open_as(browser, sandbox, "U0ALICE")
    dialog = await import_flow(page, SLACK_STEPS)
    await expect(dialog).to_have_count(0)
    await say(page, '/flow run "Deploy thread"')
    log = page.get_by_role("log", name="Messages", exact=True)
    parent = log.locator("article", has_text="Deploy finished")
    await expect(parent).to_contain_text("(edited)")  # chat.update
    await expect(parent.get_by_role("button", name="eyes reaction, 1")).to_be_visible()
    # reply_broadcast: in the channel too; a plain reply only in its thread.
    await expect(log.locator("article", has_text="every step done")).to_contain_text(
        "replied to a thread"
    )
    await expect(log.locator("article", has_text="step one done")).to_have_count(0)
    await parent.get_by_role("button", name="2 replies").click()
    thread = page.get_by_role("log", name="Thread messages")
    await expect(thread.locator("article", has_text="step one done")).to_be_visible()
    await expect(thread.locator("article", has_text="every step done")).to_contain_text(
        "Also sent to the channel"
    )
    nav = page.get_by_role("navigation", name="Workspace")
    room = nav.get_by_role("link", name="# deploy-room", exact=True)
    await expect(room).to_be_visible()  # the run's last steps: the channel appeared live
    # A reaction added by clicking, counted with the bot's.
    await parent.get_by_role("button", name="Add reaction").click()
    await parent.get_by_role("button", name="React with tada").click()
    await expect(parent.get_by_role("button", name="tada reaction, 1")).to_be_visible()
    await parent.get_by_role("button", name="eyes reaction, 1").click()
    await expect(parent.get_by_role("button", name="eyes reaction, 2")).to_be_visible()
    # The channel the run created, its topic in the header.
    await room.click()
    await expect(page.locator("#title")).to_have_text("# deploy-room")
    await expect(page.locator("#subtitle")).to_have_text("Where deploys are discussed")
    await page.context.close()


async def test_a_shared_button_added_from_the_dm_is_listed_in_app_home(
    sandbox: str, browser: Any
) -> None:
    alice = await open_as(browser, sandbox, "U0ALICE")
    dialog = await import_flow(alice, COFFEE)
    await expect(dialog).to_have_count(0)
    await say(alice, '/flow share "Coffee run" @dave')
    dave = await open_as(browser, sandbox, "U0DAVE", view="D0DAVE")
    shared = dave.get_by_role("log", name="Messages").locator(
        "article", has_text="shared the button"
    )
    await expect(shared).to_contain_text("Coffee run")
    await shared.get_by_role("button", name="Add to my buttons").click()
    await expect(
        dave.get_by_role("log", name="Messages").locator("article", has_text="is in My buttons")
    ).to_be_visible()
    await dave.get_by_role("link", name="Flowbot · Home").click()
    await expect(dave.get_by_role("region", name="App Home")).to_contain_text("Coffee run")
    await alice.context.close()
    await dave.context.close()


async def test_a_webhook_fired_from_the_page_starts_its_flow(sandbox: str, browser: Any) -> None:
    page = await open_as(browser, sandbox, "U0CAROL", view="C0DEPLOYS")
    dialog = await import_flow(page, HOOK)
    await expect(dialog).to_contain_text("Webhook token")
    shown = await dialog.inner_text()
    token = re.search(r"Webhook token.*?\n\s*(\S{20,})\s*\n", shown, re.DOTALL)
    flow_id = re.search(r"POST /hooks/([\w-]+)", shown)
    assert token and flow_id, shown
    await dialog.get_by_role("button", name="Done").first.click()
    await expect(dialog).to_have_count(0)
    await page.get_by_text("Fire a webhook trigger").click()
    form = page.locator("#webhook-form")
    await form.get_by_label("Flow id").fill(flow_id.group(1))
    await form.get_by_label("Token").fill(token.group(1))
    await form.get_by_label("JSON body").fill('{"text": "hello from the page"}')
    await form.get_by_role("button", name="Send webhook").click()
    await expect(form.get_by_role("status")).to_contain_text("HTTP 20")
    await expect(
        page.get_by_role("log", name="Messages").locator(
            "article", has_text="The webhook says hello from the page"
        )
    ).to_be_visible()
    await page.context.close()


async def test_an_ask_form_is_filled_in_through_its_modal(sandbox: str, browser: Any) -> None:
    alice = await open_as(browser, sandbox, "U0ALICE")
    dialog = await import_flow(alice, ORDER)
    await expect(dialog).to_have_count(0)
    bob = await open_as(browser, sandbox, "U0BOB", view="D0BOB")
    await say(alice, '/flow run "Lunch order"')
    asked = bob.get_by_role("log", name="Messages").locator("article", has_text="Lunch order")
    await asked.get_by_role("button", name="Fill in").click()
    form = bob.get_by_role("dialog")
    await form.get_by_label("Dish").fill("ramen")
    await form.get_by_label("How many").fill("2")
    await form.get_by_role("button", name="Send").click()
    await expect(form).to_have_count(0)
    await expect(
        alice.get_by_role("log", name="Messages").locator("article", has_text="2 x ramen for @bob")
    ).to_be_visible()
    await alice.context.close()
    await bob.context.close()


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
