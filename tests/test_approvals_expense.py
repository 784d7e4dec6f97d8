"""The gallery's expense template end to end: approve (the ledger API is called, #finance
hears it) and reject (the requester hears it, with the comment)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from typing import Any

import pytest
from aiohttp import web

from bot.app import build
from bot.server import Server
from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from flows.gallery import get_template
from flows.records import FlowRecord
from tests.conftest import ALICE, BOB, SIGNING_SECRET, TEAM, BotHarness, make_settings
from tests.runs_helpers import finished_run, texts_in, wait_for
from tests.test_approvals_flow import (
    approval_dm,
    blocks_text,
    ephemerals_of,
    has_buttons,
    open_view,
    waiting_run,
)

MANAGER = "U0MANAGER"


@pytest.fixture
async def ledger() -> AsyncIterator[tuple[str, list[dict[str, Any]]]]:
    """A stand-in for the ledger API: records what it is sent."""
    seen: list[dict[str, Any]] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(
            {
                "path": request.path,
                "auth": request.headers.get("Authorization"),
                "json": await request.json(),
            }
        )
        return web.json_response({"id": "EXP-1"}, status=201)

    app = web.Application()
    app.router.add_post("/api/expenses", handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, "127.0.0.1", 0)
    await site.start()
    yield f"http://127.0.0.1:{runner.addresses[0][1]}/api", seen
    await runner.cleanup()


@pytest.fixture
async def ebot(emulator: SlackEmulator, mongo_uri: str, db_name: str) -> AsyncIterator[BotHarness]:
    settings = make_settings(emulator, mongo_uri, db_name, flowbot_allowed_http_hosts="127.0.0.1")
    flowbot = build(settings, mongo_uri)
    server = Server(flowbot, host="127.0.0.1", port=0)
    await server.start()
    driver = SlackDriver(server.url + "/slack/events", SIGNING_SECRET, emulator)
    try:
        yield BotHarness(emulator, driver, flowbot, server, settings)
    finally:
        await driver.close()
        await server.stop()


async def expense_flow(bot: BotHarness, ledger_url: str) -> FlowRecord:
    """Alice creates the flow from the gallery template and attaches her ledger token."""
    template = get_template("expense-approval")
    assert template is not None
    catalog, connections = bot.flowbot.deps.catalog, bot.flowbot.deps.connections
    assert catalog is not None and connections is not None
    flow = (await catalog.create(TEAM, ALICE, template.definition())).flow
    await connections.create(
        TEAM,
        ALICE,
        name="Ledger",
        kind="http_bearer",
        base_url=ledger_url,
        secrets={"token": "ledger-token-1"},
    )
    await bot.driver.slash(ALICE, 'connect "Expense approval" ledger Ledger')
    await wait_for(lambda: [t for t in ephemerals_of(bot, ALICE) if "connection" in t])
    return flow


async def request_expense(bot: BotHarness, flow: FlowRecord) -> dict[str, dict[str, Any]]:
    response = await bot.driver.slash(ALICE, 'run "Expense approval" amount=42 reason="team lunch"')
    assert response.ok and response.elapsed < 3
    messages = {
        user: copy.deepcopy(await approval_dm(bot, user, "Expense 42 EUR"))
        for user in (MANAGER, BOB)
    }
    await waiting_run(bot, flow.id)
    return messages


async def test_expense_approved_goes_to_the_ledger_and_to_finance(
    ebot: BotHarness, ledger: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = ledger
    flow = await expense_flow(ebot, url)
    messages = await request_expense(ebot, flow)
    shown = blocks_text(messages[BOB])
    assert "team lunch, requested by <@U0ALICE>" in shown and "Approve" in shown
    assert any("Approval requested" in t for t in texts_in(ebot, "#finance-bots"))

    # Bob (through the leads group) approves.
    assert (await ebot.driver.click(BOB, messages[BOB], "approval:Approve")).ok
    [run] = await finished_run(ebot, flow.id)
    assert run.status == "succeeded", run.error
    assert run.steps["ask"].output["outcome"] == "approved"
    assert seen == [
        {"path": "/api/expenses", "auth": "Bearer ledger-token-1", "json": {"amount": 42}}
    ]
    assert texts_in(ebot, "#finance")[-1] == f"Approved by <@{BOB}>"
    for user in (MANAGER, BOB):
        [message] = [m for m in ebot.emulator.messages_in(user) if "Expense 42" in m["text"]]
        assert not has_buttons(message) and "Approved" in blocks_text(message)
    assert any("Approved" in t for t in texts_in(ebot, "#finance-bots"))
    assert not [m for m in ebot.emulator.messages_in(ALICE) if "Rejected" in m["text"]]


async def test_expense_rejected_with_a_comment_tells_the_requester(
    ebot: BotHarness, ledger: tuple[str, list[dict[str, Any]]]
) -> None:
    url, seen = ledger
    flow = await expense_flow(ebot, url)
    messages = await request_expense(ebot, flow)

    assert (await ebot.driver.click(MANAGER, messages[MANAGER], "approval_comment")).ok
    view = await open_view(ebot, MANAGER, "approval_comment")
    await ebot.driver.fill_and_submit(
        MANAGER, view["id"], {"option": "Reject", "comment": "Over the lunch budget"}
    )
    [run] = await finished_run(ebot, flow.id)
    assert run.status == "succeeded", run.error
    out = run.steps["ask"].output
    assert (out["outcome"], out["responder"], out["comment"]) == (
        "rejected",
        MANAGER,
        "Over the lunch budget",
    )
    assert seen == []  # nothing reached the ledger
    dms = [m["text"] for m in ebot.emulator.messages_in(ALICE)]
    assert "Rejected: Over the lunch budget" in dms  # the flow's own send_dm step
    assert any(t.startswith("Your request") for t in dms)  # the approval's notice
    # Bob clicks too late and is told who decided.
    assert (await ebot.driver.click(BOB, messages[BOB], "approval:Approve")).ok
    told = await wait_for(lambda: [t for t in ephemerals_of(ebot, BOB) if "already decided" in t])
    assert "Rejected" in told[0] and MANAGER in told[0]
    assert json.dumps(run.steps["ask"].output["responses"]).count(MANAGER) == 1
