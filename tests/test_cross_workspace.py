"""Issue 19: every lookup is scoped to the payload's team id. A click or a submission
forged with another workspace's team id finds nothing and changes nothing (runs, access
requests, connections, forms); the same from its own workspace works."""

from __future__ import annotations

import copy
from collections.abc import Iterator
from contextlib import contextmanager

from cards import connections as conn_cards
from cards import sharing as sharing_cards
from emulator.server import SlackEmulator
from tests.support import (
    ALICE,
    BOB,
    DAVE,
    INSTANT,
    TEAM,
    BotHarness,
    by_label,
    create_connection,
    create_flow,
    deps,
    eventually,
    finished_run,
    first_reply,
    runs_of,
    settle,
    wait_dm,
    waiting_run,
)
from tests.test_ask_step import FORM, ask_of, fill_message, open_form
from tests.test_run_control import WAITS, notify_message

OTHER = "T0OTHER"


@contextmanager
def other_workspace(emulator: SlackEmulator) -> Iterator[None]:
    """Payloads the driver signs carry another workspace's team id meanwhile."""
    team = emulator.team_id
    emulator.team_id = OTHER
    try:
        yield
    finally:
        emulator.team_id = team


async def test_a_run_button_from_another_workspace_finds_no_run(bot: BotHarness) -> None:
    flow = await create_flow(bot, WAITS)
    await bot.driver.slash(ALICE, "run Slow who=ann")
    run = await waiting_run(bot, flow.id)
    message = await eventually(lambda: notify_message(bot, run.id))
    with other_workspace(bot.emulator):
        assert (await bot.driver.click(ALICE, message, "run_cancel", run.id)).ok
    await settle(0.3)
    [still] = await runs_of(bot, flow.id)
    assert still.status == "waiting" and not still.cancelled_by

    assert (await bot.driver.click(ALICE, message, "run_cancel", run.id)).ok
    [done] = await finished_run(bot, flow.id)
    assert done.status == "cancelled"


async def test_an_access_request_answered_from_another_workspace_does_not_count(
    bot: BotHarness,
) -> None:
    flow = await create_flow(bot, INSTANT)
    await deps(bot).sharing.request_access(TEAM, DAVE, flow.id)
    ask = await wait_dm(bot, ALICE, "asks to run")
    with other_workspace(bot.emulator):
        assert (await bot.driver.click(ALICE, ask, sharing_cards.APPROVE_ACTION)).ok
    await settle(0.3)
    requests = [doc async for doc in bot.db["access_requests"].find({})]
    assert requests and all(doc["status"] == "pending" for doc in requests), requests
    saved = await bot.db["flows"].find_one({"_id": flow.id})
    assert DAVE not in str((saved or {}).get("shares"))

    assert (await bot.driver.click(ALICE, ask, sharing_cards.APPROVE_ACTION)).ok
    await wait_dm(bot, DAVE, "approved your request")


async def test_a_connection_button_from_another_workspace_finds_nothing(
    bot: BotHarness,
) -> None:
    record = await create_connection(
        bot, ALICE, "Spare", "https://ledger.example.com/api", "spare-token-123456789"
    )
    listing = await first_reply(bot, ALICE, "connections")
    with other_workspace(bot.emulator):
        assert (await bot.driver.click(ALICE, listing, conn_cards.DELETE_ACTION, record.id)).ok
        assert (await bot.driver.click(ALICE, listing, conn_cards.UPDATE_ACTION, record.id)).ok
    await settle(0.3)
    assert await bot.db["connections"].count_documents({"_id": record.id}) == 1
    assert not [v for v in bot.emulator.views.values() if v.get("callback_id") == "conn_save"]

    assert (await bot.driver.click(ALICE, listing, conn_cards.DELETE_ACTION, record.id)).ok

    async def gone() -> bool:
        return await bot.db["connections"].count_documents({"_id": record.id}) == 0

    await eventually(gone)


async def test_a_form_filled_in_from_another_workspace_does_not_count(bot: BotHarness) -> None:
    flow = await create_flow(bot, FORM)
    await bot.driver.slash(ALICE, "run Incident form")
    to_bob = await fill_message(bot, BOB)
    run = await waiting_run(bot, flow.id)
    views = len(bot.emulator.views)
    with other_workspace(bot.emulator):
        assert (await bot.driver.click(BOB, copy.deepcopy(to_bob), "ask_fill")).ok
    await settle(0.3)
    assert len(bot.emulator.views) == views  # no form opened

    view = await open_form(bot, BOB, to_bob)
    values = by_label(view, {"Severity": "high", "Users affected": "4"})
    opened = bot.emulator.views[view["id"]]
    # The whole payload says the other workspace (Bolt reads the view's team first).
    bot.emulator.views[view["id"]] = {**opened, "team_id": OTHER, "app_installed_team_id": OTHER}
    with other_workspace(bot.emulator):
        response = await bot.driver.fill_and_submit(BOB, view["id"], values)
    bot.emulator.views[view["id"]] = opened
    assert response.ok
    await settle(0.3)
    assert (await ask_of(bot, run.id)).status == "pending"

    response = await bot.driver.fill_and_submit(BOB, view["id"], values)
    assert response.ok
    [done] = await finished_run(bot, flow.id)
    assert done.status == "succeeded", done.error
