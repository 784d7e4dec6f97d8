"""The gallery's expense template end to end: approve (the ledger API is called, #finance
hears it) and reject (the requester hears it, with the comment)."""

from __future__ import annotations

import copy
import json

import pytest

from flows.records import FlowRecord
from tests.support import (
    ALICE,
    BOB,
    JSON,
    BotHarness,
    approval_dm,
    blocks_text,
    comment_on,
    create_connection,
    create_flow,
    eventually,
    finished_run,
    has_buttons,
    response_texts,
    template_source,
    texts_in,
    waiting_run,
)

MANAGER = "U0MANAGER"


Requested = tuple[FlowRecord, dict[str, JSON], list[JSON]]


@pytest.fixture
async def requested(http_bot: BotHarness, ledger: tuple[str, list[JSON]]) -> Requested:
    """Alice creates the flow from the gallery template, attaches her ledger token, and asks
    for 42 EUR: the flow, each approver's message (as their client shows it), what the
    ledger API was sent."""
    url, seen = ledger
    flow = await create_flow(http_bot, template_source("expense-approval"))
    await create_connection(http_bot, ALICE, "Ledger", url, "ledger-token-1")
    await http_bot.driver.slash(ALICE, 'connect "Expense approval" ledger Ledger')
    await eventually(lambda: [t for t in response_texts(http_bot, ALICE) if "connection" in t])

    response = await http_bot.driver.slash(
        ALICE, 'run "Expense approval" amount=42 reason="team lunch"'
    )
    assert response.ok and response.elapsed < 3
    messages = {
        user: copy.deepcopy(await approval_dm(http_bot, user, "Expense 42 EUR"))
        for user in (MANAGER, BOB)
    }
    await waiting_run(http_bot, flow.id)
    return flow, messages, seen


async def test_expense_approved_goes_to_the_ledger_and_to_finance(
    http_bot: BotHarness, requested: Requested
) -> None:
    flow, messages, seen = requested
    shown = blocks_text(messages[BOB])
    assert "team lunch, requested by <@U0ALICE>" in shown and "Approve" in shown
    assert any("Approval requested" in t for t in texts_in(http_bot, "#finance-bots"))

    # Bob (through the leads group) approves.
    assert (await http_bot.driver.click(BOB, messages[BOB], "approval:Approve")).ok
    [run] = await finished_run(http_bot, flow.id)
    assert run.status == "succeeded", run.error
    assert run.steps["ask"].output["outcome"] == "approved"
    assert seen == [
        {"path": "/api/expenses", "auth": "Bearer ledger-token-1", "json": {"amount": 42}}
    ]
    assert texts_in(http_bot, "#finance")[-1] == f"Approved by <@{BOB}>"
    # The run goes on first; the approval's messages and notices follow.
    await eventually(lambda: any("Approved" in t for t in texts_in(http_bot, "#finance-bots")))
    for user in (MANAGER, BOB):
        [message] = [m for m in http_bot.emulator.messages_in(user) if "Expense 42" in m["text"]]
        assert not has_buttons(message) and "Approved" in blocks_text(message)
    assert not [m for m in http_bot.emulator.messages_in(ALICE) if "Rejected" in m["text"]]


async def test_expense_rejected_with_a_comment_tells_the_requester(
    http_bot: BotHarness, requested: Requested
) -> None:
    flow, messages, seen = requested

    await comment_on(http_bot, MANAGER, messages[MANAGER], "Reject", "Over the lunch budget")
    [run] = await finished_run(http_bot, flow.id)
    assert run.status == "succeeded", run.error
    out = run.steps["ask"].output
    assert (out["outcome"], out["responder"], out["comment"]) == (
        "rejected",
        MANAGER,
        "Over the lunch budget",
    )
    assert seen == []  # nothing reached the ledger
    # The approval's notice (it follows the resumed run).
    await eventually(
        lambda: any(
            m["text"].startswith("Your request") for m in http_bot.emulator.messages_in(ALICE)
        )
    )
    dms = [m["text"] for m in http_bot.emulator.messages_in(ALICE)]
    assert "Rejected: Over the lunch budget" in dms  # the flow's own send_dm step
    # Bob clicks too late and is told who decided.
    assert (await http_bot.driver.click(BOB, messages[BOB], "approval:Approve")).ok
    told = await eventually(
        lambda: [t for t in response_texts(http_bot, BOB) if "already decided" in t]
    )
    assert "Rejected" in told[0] and MANAGER in told[0]
    assert json.dumps(run.steps["ask"].output["responses"]).count(MANAGER) == 1
