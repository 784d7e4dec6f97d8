"""Managing flows from Slack: show, list, on/off, delete with confirmation, refusals."""

from __future__ import annotations

from typing import Any

from flows.definition import parse_definition
from flows.records import FlowRecord
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    TEAM,
    BotHarness,
    all_text,
    command,
    create_flow,
    ephemerals_for,
    eventually,
    field_errors,
    plant_share,
    settle,
    template_source,
    wait_view,
)

EXPENSE = template_source("expense-approval")
STANDUP = template_source("daily-standup")


async def doc_of(bot: BotHarness, flow: FlowRecord) -> dict[str, Any] | None:
    doc: dict[str, Any] | None = await bot.db["flows"].find_one({"_id": flow.id})
    return doc


async def test_show_describes_kind_trigger_inputs_steps_and_owners(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    await plant_share(bot, flow.id, "S0LEADS", "owner")
    card = all_text(await command(bot, ALICE, "show expense APPROVAL", "Expense approval"))
    assert "Instant" in card and "On demand" in card
    assert "`amount` (number, required)" in card and "`reason` (text, required)" in card
    assert "`ask` approval" in card and "`route` condition" in card and "_then_" in card
    assert "<@U0ALICE>" in card and "<!subteam^S0LEADS>" in card
    assert ":large_green_circle: on" in card and "version 1" in card


async def test_show_gives_the_next_run_of_a_schedule(bot: BotHarness) -> None:
    flow = await create_flow(bot, STANDUP)
    card = all_text(await command(bot, ALICE, f"show {flow.id}", "Daily standup"))
    assert "cron `0 9 * * 1-5`" in card and "Europe/Paris" in card
    assert "*Next run:* <!date^" in card
    await command(bot, ALICE, f"off {flow.id}", "is off")
    card = all_text(await command(bot, ALICE, f"show {flow.id}", "Daily standup"))
    assert "none while the flow is off" in card


async def test_list_has_an_empty_state_that_says_how_to_start(bot: BotHarness) -> None:
    answer = all_text(await command(bot, ALICE, "list", "no flows yet"))
    assert "/flow new" in answer and "/flow import" in answer


async def test_list_shows_owned_and_shared_flows(bot: BotHarness) -> None:
    mine = await create_flow(bot, EXPENSE, ALICE)
    theirs = await create_flow(bot, STANDUP, CAROL)
    await create_flow(bot, EXPENSE.replace("Expense approval", "Carol private"), CAROL)
    # Alice is in #finance.
    await plant_share(bot, theirs.id, "C0FINANCE", "owner", added_by=CAROL)
    runner = await create_flow(bot, EXPENSE.replace("Expense approval", "Shared button"), CAROL)
    await plant_share(bot, runner.id, ALICE, "runner", added_by=CAROL)
    answer = all_text(await command(bot, ALICE, "list", "Flows you own"))
    owned, _, shared = answer.partition("Shared with you")
    assert mine.name in owned and theirs.name in owned
    assert "Shared button" in shared
    assert "Carol private" not in answer


async def test_on_and_off_switch_the_flow(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    await command(bot, ALICE, "off Expense approval", "is off")
    doc = await doc_of(bot, flow)
    assert doc is not None and doc["enabled"] is False and doc["version"] == 1
    await command(bot, ALICE, "on Expense approval", "is on")
    doc = await doc_of(bot, flow)
    assert doc is not None and doc["enabled"] is True


async def test_change_listeners_hear_every_change(bot: BotHarness) -> None:
    heard: list[tuple[str, str]] = []

    async def listen(team_id: str, flow_id: str) -> None:
        heard.append((team_id, flow_id))

    bot.flowbot.deps.catalog.on_change.append(listen)
    flow = await create_flow(bot, EXPENSE)
    await command(bot, ALICE, f"off {flow.id}", "is off")
    await bot.flowbot.deps.catalog.update_definition(
        TEAM, ALICE, flow.id, parse_definition(EXPENSE), 1
    )
    await bot.flowbot.deps.catalog.delete(TEAM, ALICE, flow.id)
    assert heard == [(TEAM, flow.id)] * 4


async def test_delete_asks_first_and_the_confirm_click_deletes(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    await bot.flowbot.deps.catalog.update_definition(
        TEAM, ALICE, flow.id, parse_definition(EXPENSE), 1
    )
    question = await command(bot, ALICE, "delete Expense approval", "cannot be undone")
    assert await doc_of(bot, flow) is not None
    response = await bot.driver.click(ALICE, question, "flow_delete_confirm")
    assert response.ok
    await eventually(lambda: "Deleted" in all_text(question))
    assert await doc_of(bot, flow) is None
    assert await bot.db["flow_versions"].count_documents({"flow_id": flow.id}) == 0


async def test_delete_cancel_keeps_the_flow(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    question = await command(bot, ALICE, "delete Expense approval", "cannot be undone")
    await bot.driver.click(ALICE, question, "flow_delete_cancel")
    await eventually(lambda: "was not deleted" in all_text(question))
    assert await doc_of(bot, flow) is not None


async def test_the_confirm_click_checks_permission_again(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    await plant_share(bot, flow.id, BOB, "owner")
    question = await command(bot, BOB, "delete Expense approval", "cannot be undone")
    await bot.db["flows"].update_one({"_id": flow.id}, {"$set": {"shares": []}})
    await bot.driver.click(BOB, question, "flow_delete_confirm")
    await eventually(lambda: "can't delete" in all_text(question))
    assert await doc_of(bot, flow) is not None


async def test_bob_cannot_change_alices_flow(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    before = await doc_of(bot, flow)
    for text, verb in [
        ("delete Expense approval", "delete"),
        ("off Expense approval", "edit"),
        ("export Expense approval", "export"),
        ("show Expense approval", "see"),
    ]:
        answer = await command(bot, BOB, text, f"can't {verb}")
        assert "only its owners" in all_text(answer)
        assert not any(b.get("type") == "actions" for b in answer["blocks"])
    # A forged confirm click (Bob never got the buttons) changes nothing either.
    await bot.driver.block_action(
        BOB, "flow_delete_confirm", flow.id, channel="C0GENERAL", block_id="flow_delete"
    )
    await settle()
    assert await doc_of(bot, flow) == before


async def test_a_run_only_user_may_see_but_not_export_or_edit(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    await plant_share(bot, flow.id, BOB, "runner")
    await command(bot, BOB, "show Expense approval", "On demand")
    await command(bot, BOB, "export Expense approval", "can't export")
    await command(bot, BOB, "on Expense approval", "can't edit")


async def test_unknown_flows_and_missing_names_get_the_usage_line(bot: BotHarness) -> None:
    for text, usage in [
        ("show", "/flow show <flow>"),
        ("show Nothing here", "/flow show <flow>"),
        ("on", "/flow on <flow>"),
        ("delete ghost", "/flow delete <flow>"),
        ("export ghost", "/flow export <flow>"),
    ]:
        since = len(bot.emulator.ephemerals)
        await bot.driver.slash(ALICE, text)
        answer = await eventually(lambda s=since: ephemerals_for(bot, ALICE, s))
        assert usage in all_text(answer[-1]), text


async def test_a_rename_onto_another_name_is_refused(bot: BotHarness) -> None:
    await create_flow(bot, EXPENSE)
    standup = await create_flow(bot, STANDUP)
    await bot.driver.slash(ALICE, f"edit {standup.id}")
    editor = await wait_view(bot, ALICE, "flow_editor")
    renamed = STANDUP.replace("Daily standup reminder", "expense approval")
    errors = field_errors(
        await bot.driver.fill_and_submit(ALICE, editor["id"], {"definition": renamed})
    )
    assert "already exists" in errors["definition"]
    doc = await doc_of(bot, standup)
    assert doc is not None and doc["version"] == 1


async def test_a_confirmation_falls_back_to_a_dm_without_a_channel(bot: BotHarness) -> None:
    # Created from App Home (no channel): the confirmation is a DM.
    await bot.driver.event(bot.driver.app_home_opened(ALICE))
    await eventually(lambda: ALICE in bot.emulator.home_views)
    await bot.driver.click_home(ALICE, "home_new_flow")
    gallery = await wait_view(bot, ALICE, "flow_gallery")
    await bot.driver.fill_and_submit(ALICE, gallery["id"], {"template": "blank"})
    editor = await wait_view(bot, ALICE, "flow_editor")
    await bot.driver.fill_and_submit(ALICE, editor["id"], {})
    dm = bot.emulator.dm_channel(ALICE)
    await eventually(lambda: any("Created" in m["text"] for m in bot.emulator.messages_in(dm)))
