"""Issue 19: a view's `private_metadata` is untrusted input. The bot seals what it puts
there, and that is only the id of a context kept on the server (the response URL to
answer, the flow…): a submission carrying metadata the bot did not write is refused, and
one naming another modal's context, another person's, or none finds nothing and makes no
outbound request. Approvals are looked up in the clicker's workspace only."""

from __future__ import annotations

import copy
import json

from cards import connections as conn_cards
from emulator.server import SlackEmulator
from flows.sealed import MetadataSeal, derive_key
from tests.support import (
    ALICE,
    BOB,
    JSON,
    SIGNING_SECRET,
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
    # The metadata carries the id of what the bot keeps on the server, nothing else.
    assert mac and plain and "http" not in plain and flow.id not in plain
    forged_state = json.dumps({"flow": flow.id, "url": f"{attacker}/expenses"})
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


def _sealed(text: str) -> str:
    """Metadata sealed as the bot seals it (what an attacker who had the key could write)."""
    return MetadataSeal(derive_key(SIGNING_SECRET)).seal(text)


async def test_metadata_naming_another_modals_context_or_none_sends_nothing(
    bot: BotHarness, ledger: tuple[str, list[JSON]]
) -> None:
    attacker, seen = ledger
    flow = await create_flow(bot, template_source("expense-approval"))
    # A connect form opened from a slash command: its context holds that command's URL.
    await bot.driver.slash(ALICE, "connect")
    form = await wait_view(bot, ALICE, conn_cards.SAVE_CALLBACK)
    form_context = json.loads(form["private_metadata"].partition("|")[2])["c"]
    await bot.driver.slash(ALICE, 'run "Expense approval"')
    view = copy.deepcopy(await wait_view(bot, ALICE, "run_flow_modal"))
    mine = view["private_metadata"]
    inputs = by_label(view, {"Amount": "42", "Reason": "x"})
    # Another person's context (the connections tests cover another person's of a kind).
    await bot.driver.slash(BOB, "connect")
    bobs = (await wait_view(bot, BOB, conn_cards.SAVE_CALLBACK))["private_metadata"]

    calls, posts = len(bot.emulator.calls), len(bot.emulator.response_url_posts)
    forged = [
        _sealed(form_context),  # another kind of modal's context
        bobs,  # another person's context
        _sealed(json.dumps({"flow": flow.id, "url": f"{attacker}/expenses"})),  # no context
        _sealed(f"{attacker}/expenses"),
        "",  # none
    ]
    for metadata in forged:
        # The modal as it was opened (a refusal replaced it), with forged metadata.
        bot.emulator.views[view["id"]] = {**copy.deepcopy(view), "private_metadata": metadata}
        response = await bot.driver.fill_and_submit(ALICE, view["id"], inputs)
        assert response.ok, (metadata, response)
        answer = response.json or {}
        assert answer["response_action"] == "update", answer
        assert "no longer valid" in json.dumps(answer["view"]), answer
    await settle(0.3)
    assert seen == [] and await runs_of(bot, flow.id) == []
    assert len(bot.emulator.response_url_posts) == posts
    assert [m for m, _ in bot.emulator.calls[calls:] if m != "auth.test"] == []

    # Its own context still works, and the answer goes to the URL kept on the server.
    bot.emulator.views[view["id"]] = {**copy.deepcopy(view), "private_metadata": mine}
    response = await bot.driver.fill_and_submit(ALICE, view["id"], inputs)
    assert response.ok, response
    await waiting_run(bot, flow.id)
    assert seen == []


async def test_a_connect_form_naming_another_modals_context_saves_nothing(
    bot: BotHarness,
) -> None:
    await bot.driver.slash(ALICE, "connect")
    form = await wait_view(bot, ALICE, conn_cards.SAVE_CALLBACK)
    await bot.driver.slash(BOB, "connect")
    bobs = (await wait_view(bot, BOB, conn_cards.SAVE_CALLBACK))["private_metadata"]
    posts = len(bot.emulator.response_url_posts)
    fields = {
        conn_cards.NAME_BLOCK: "Ledger",
        conn_cards.BASE_URL_BLOCK: "https://ledger.example.com/api",
        conn_cards.SECRET_BLOCK_PREFIX + "token": "s3cret",
    }
    for metadata in (bobs, _sealed(json.dumps({"mode": "create"})), ""):
        bot.emulator.views[form["id"]]["private_metadata"] = metadata
        response = await bot.driver.fill_and_submit(ALICE, form["id"], fields)
        assert response.ok, response
        answer = response.json or {}
        assert answer["response_action"] == "errors", answer
    await settle(0.2)
    assert await bot.db["connections"].count_documents({}) == 0
    assert len(bot.emulator.response_url_posts) == posts
