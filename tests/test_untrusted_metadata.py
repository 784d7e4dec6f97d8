"""Issue 19: a view's `private_metadata` is untrusted input. The bot seals what it puts
there; a submission carrying metadata the bot did not write (another response URL,
another flow) is refused and makes no outbound request. Approvals are looked up in the
clicker's workspace only."""

from __future__ import annotations

import json

from emulator.server import SlackEmulator
from tests.support import (
    ALICE,
    BOB,
    JSON,
    BotHarness,
    approval_dm,
    by_label,
    create_flow,
    runs_of,
    settle,
    template_source,
    wait_view,
    waiting_run,
)


async def test_a_forged_view_submission_triggers_no_outbound_request(
    bot: BotHarness, ledger: tuple[str, list[JSON]]
) -> None:
    attacker, seen = ledger
    flow = await create_flow(bot, template_source("expense-approval"))
    await bot.driver.slash(ALICE, 'run "Expense approval"')
    view = await wait_view(bot, ALICE, "run_flow_modal")
    sealed = view["private_metadata"]
    mac, _, plain = sealed.partition("|")
    state = json.loads(plain)
    assert state["flow"] == flow.id and mac
    forged_state = json.dumps({**state, "url": f"{attacker}/expenses"})
    calls = len(bot.emulator.calls)
    for forged in (forged_state, f"{mac}|{forged_state}", "0" * 32 + "|" + plain, "{}"):
        bot.emulator.views[view["id"]]["private_metadata"] = forged
        response = await bot.driver.fill_and_submit(
            ALICE, view["id"], by_label(view, {"Amount": "42", "Reason": "x"})
        )
        assert response.status == 400, (forged, response)
    await settle(0.3)
    assert seen == [] and await runs_of(bot, flow.id) == []
    assert [m for m, _ in bot.emulator.calls[calls:] if m != "auth.test"] == []

    # What the bot wrote is accepted.
    bot.emulator.views[view["id"]]["private_metadata"] = sealed
    response = await bot.driver.fill_and_submit(
        ALICE, view["id"], by_label(view, {"Amount": "42", "Reason": "x"})
    )
    assert response.ok, response
    await waiting_run(bot, flow.id)
    assert seen == []


async def test_an_approval_click_from_another_workspace_does_not_count(
    bot: BotHarness, emulator: SlackEmulator
) -> None:
    flow = await create_flow(bot, template_source("expense-approval"))
    await bot.driver.slash(ALICE, 'run "Expense approval" amount=12 reason=lunch')
    message = await approval_dm(bot, BOB, "Expense 12 EUR")
    run = await waiting_run(bot, flow.id)

    team = emulator.team_id
    emulator.team_id = "T0OTHER"
    try:
        assert (await bot.driver.click(BOB, message, "approval:Approve")).ok
    finally:
        emulator.team_id = team
    await settle(0.3)
    [still] = await runs_of(bot, flow.id)
    assert still.status == run.status == "waiting"
    approvals = [doc async for doc in bot.db["approvals"].find({"run_id": run.id})]
    assert approvals and all(not doc.get("responses") for doc in approvals), approvals

    # From its own workspace, the same click counts.
    assert (await bot.driver.click(BOB, message, "approval:Approve")).ok
    await settle(0.3)
    approvals = [doc async for doc in bot.db["approvals"].find({"run_id": run.id})]
    assert any(doc.get("responses") for doc in approvals), approvals
