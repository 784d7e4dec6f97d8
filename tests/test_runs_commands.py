"""`/flow run` inputs and modal, who may run what, the App Home button, `/flow history`."""

from __future__ import annotations

import json
from datetime import datetime, timezone

import pytest

from cards.errors import describe
from cards.runs import cancel_reason
from flows.errors import FlowbotError
from flows.run_model import CancelRequest, RunRefused
from flows.run_requests import FlowGone, HistoryNotAllowed, RunHidden, RunNotAllowed, RunNotFound
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    TEAM,
    BotHarness,
    create_flow,
    deps,
    eventually,
    finished_run,
    plant_share,
    runs_of,
    texts_in,
    values_of,
    wait_view,
)

EXPENSE = """
name: Expense report
inputs:
  - {id: amount, label: "Amount (EUR)", type: number, required: true}
  - {id: reason, label: Reason, type: text, required: true}
  - {id: urgent, type: boolean}
  - {id: day, type: date}
  - {id: manager, type: user}
  - {id: room, type: channel}
  - {id: kind, type: choice, choices: [travel, food]}
steps:
  - id: say
    type: post_message
    channel: "#finance"
    text: "{{ inputs.amount }} EUR for {{ inputs.reason }} ({{ inputs.kind | default('-') }})"
"""


def last_ephemeral_text(bot: BotHarness, user: str) -> str:
    eph = bot.emulator.last_ephemeral(user)
    return json.dumps(eph) if eph else ""


async def test_all_inputs_given_runs_at_once_with_typed_values(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    await bot.driver.slash(
        ALICE,
        'run "Expense report" amount=12.5 reason="team lunch" urgent=yes day=2026-11-02 '
        f"manager=<@{BOB}|bob> room=<#C0FINANCE|finance> kind=Food",
    )
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    assert run.inputs == {
        "amount": 12.5,
        "reason": "team lunch",
        "urgent": True,
        "day": "2026-11-02",
        "manager": BOB,
        "room": "C0FINANCE",
        "kind": "food",
    }
    assert texts_in(bot, "#finance") == ["12.5 EUR for team lunch (food)"]


@pytest.mark.parametrize(
    ("args", "expected"),
    [
        ("amount=abc reason=x", "expected a number"),
        ("amount=1 reason=x colour=red", "has no input `colour`"),
        ("amount=1 reason=x kind=boats", "is not one of"),
        ("amount=1 reason=x day=tomorrow", "expected a date"),
        ("amount=1 amount=2 reason=x", "given twice"),
        ("amount=1 reason", "write key=value"),
    ],
)
async def test_bad_inputs_get_an_error_with_usage_and_nothing_runs(
    bot: BotHarness, args: str, expected: str
) -> None:
    flow = await create_flow(bot, EXPENSE)
    await bot.driver.slash(ALICE, f'run "Expense report" {args}')
    text = await eventually(lambda: last_ephemeral_text(bot, ALICE))
    assert expected in text and "/flow run" in text
    assert await runs_of(bot, flow.id) == []
    assert bot.emulator.views == {}


async def test_missing_required_input_opens_the_modal_and_submitting_runs(
    bot: BotHarness,
) -> None:
    flow = await create_flow(bot, EXPENSE)
    await bot.driver.slash(ALICE, 'run "Expense report" amount=40 kind=travel')
    view = await wait_view(bot, ALICE)
    assert await runs_of(bot, flow.id) == []
    elements = {b["block_id"]: b["element"] for b in view["blocks"] if b["type"] == "input"}
    assert elements["input_amount"]["type"] == "number_input"
    assert elements["input_amount"]["initial_value"] == "40"  # prefilled
    assert elements["input_reason"]["type"] == "plain_text_input"
    assert elements["input_urgent"]["type"] == "radio_buttons"
    assert elements["input_day"]["type"] == "datepicker"
    assert elements["input_manager"]["type"] == "users_select"
    assert elements["input_room"]["type"] == "conversations_select"
    assert elements["input_kind"]["type"] == "static_select"
    assert elements["input_kind"]["initial_option"]["value"] == "travel"
    # Submitting with the required reason empty is refused on the field.
    empty = await bot.driver.view_submission(ALICE, view["id"])
    assert empty.json is not None and empty.json["response_action"] == "errors"
    assert "input_reason" in empty.json["errors"]
    assert await runs_of(bot, flow.id) == []
    submitted = await bot.driver.fill_and_submit(
        ALICE, view["id"], {"input_reason": "taxi", "input_manager": BOB}
    )
    assert submitted.ok, submitted.error
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded"
    assert run.inputs["amount"] == 40 and run.inputs["reason"] == "taxi"
    assert run.inputs["manager"] == BOB and run.inputs["kind"] == "travel"
    assert texts_in(bot, "#finance") == ["40 EUR for taxi (travel)"]
    # The result reaches the person through the slash command's response_url.
    await eventually(
        lambda: [p for p in bot.emulator.response_url_posts if "succeeded" in json.dumps(p)]
    )


SIMPLE = """
name: Ping
kind: {kind}
{trigger}
steps:
  - {{type: post_message, channel: "#general", text: "pong"}}
"""


def simple(kind: str = "instant") -> str:
    trigger = {
        "instant": "",
        "scheduled": 'trigger: {type: schedule, cron: "0 9 * * 1"}',
        "automated": "trigger: {type: webhook}",
    }[kind]
    return SIMPLE.format(kind=kind, trigger=trigger)


async def test_run_only_users_may_run_instant_flows_others_may_not(bot: BotHarness) -> None:
    flow = await create_flow(bot, simple())
    await plant_share(bot, flow.id, BOB, "runner")
    await bot.driver.slash(CAROL, "run Ping")
    assert "can't run" in await eventually(lambda: last_ephemeral_text(bot, CAROL))
    await bot.driver.slash(BOB, "run Ping")
    [run] = await finished_run(bot, flow.id)
    assert run.started_by == BOB and run.status == "succeeded"


async def test_scheduled_flows_run_now_by_owners_only(bot: BotHarness) -> None:
    flow = await create_flow(bot, simple("scheduled"))
    await plant_share(bot, flow.id, BOB, "runner")  # grants nothing on a scheduled flow
    await bot.driver.slash(BOB, "run Ping")
    assert "Only the owners" in await eventually(lambda: last_ephemeral_text(bot, BOB))
    await bot.driver.slash(ALICE, "run Ping")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded" and run.started_by == ALICE


async def test_automated_and_disabled_flows_are_not_run_by_hand(bot: BotHarness) -> None:
    auto = await create_flow(bot, simple("automated"))
    await bot.driver.slash(ALICE, "run Ping")
    assert "automated" in await eventually(lambda: last_ephemeral_text(bot, ALICE))
    await deps(bot).catalog.delete(TEAM, ALICE, auto.id)
    flow = await create_flow(bot, simple())
    await deps(bot).catalog.set_enabled(TEAM, ALICE, flow.id, False)
    await bot.driver.slash(ALICE, "run Ping")
    await eventually(lambda: "turned off" in last_ephemeral_text(bot, ALICE))
    assert await runs_of(bot, flow.id) == []
    assert await runs_of(bot, auto.id) == []


async def test_unknown_flow_gets_error_with_usage(bot: BotHarness) -> None:
    await bot.driver.slash(ALICE, "run Nope")
    text = await eventually(lambda: last_ephemeral_text(bot, ALICE))
    assert "Nope" in text and "/flow run" in text


async def test_home_run_button_runs_or_opens_the_modal(bot: BotHarness) -> None:
    plain = await create_flow(bot, simple())
    response = await bot.driver.block_action(
        ALICE, "run_flow", plain.id, view={"id": "VHOME", "type": "home", "blocks": []}
    )
    assert response.ok
    [run] = await finished_run(bot, plain.id)
    assert run.status == "succeeded" and run.trigger.data["source"] == "home"
    # No response_url: the result comes as a DM.
    await eventually(lambda: any("succeeded" in m["text"] for m in bot.emulator.messages_in(ALICE)))
    with_inputs = await create_flow(bot, EXPENSE)
    await bot.driver.block_action(
        ALICE, "run_flow", with_inputs.id, view={"id": "VHOME", "type": "home", "blocks": []}
    )
    view = await wait_view(bot, ALICE, "run_flow_modal")
    await bot.driver.fill_and_submit(
        ALICE, view["id"], {"input_amount": "3", "input_reason": "pens"}
    )
    [run] = await finished_run(bot, with_inputs.id)
    assert run.status == "succeeded" and run.inputs["reason"] == "pens"
    # Someone without access is told so, and nothing runs.
    await bot.driver.block_action(
        CAROL, "run_flow", plain.id, view={"id": "VHOME", "type": "home", "blocks": []}
    )
    refusal = await wait_view(bot, CAROL)
    assert "can't run" in json.dumps(refusal)
    assert len(await runs_of(bot, plain.id)) == 1


HISTORY_FLOW = """
name: Hist
notify: "#ops-bots"
inputs:
  - {id: fail, type: boolean, default: false}
steps:
  - id: check
    type: condition
    if: "{{ inputs.fail }}"
    then:
      - {id: boom, type: post_message, channel: "#general", text: "{{ vars.nothing }}"}
  - {id: ok, type: post_message, channel: "#general", text: "ok by {{ run.started_by }}"}
"""


async def test_history_shows_runs_and_details_with_permissions(bot: BotHarness) -> None:
    flow = await create_flow(bot, HISTORY_FLOW)
    await plant_share(bot, flow.id, BOB, "runner")
    await bot.driver.slash(ALICE, "run Hist")
    await finished_run(bot, flow.id, 1)
    await bot.driver.slash(BOB, "run Hist fail=yes")
    runs = await finished_run(bot, flow.id, 2)
    failed = next(r for r in runs if r.status == "failed")
    assert failed.started_by == BOB and failed.error_step == "boom"
    assert "'vars' has no attribute 'nothing'" in (failed.error or "")
    # The failure is in the notify channel with its step and error.
    # (The notice is updated right after the run record is finished.)
    await eventually(
        lambda: any(
            "failed" in m["text"] and "boom" in json.dumps(m)
            for m in bot.emulator.messages_in("#ops-bots")
        )
    )

    # Owners see every run.
    await bot.driver.slash(ALICE, "history Hist")
    listing = await eventually(
        lambda: (e := bot.emulator.last_ephemeral(ALICE)) and "Details" in json.dumps(e) and e
    )
    assert sorted(values_of(listing, "run_details")) == sorted(r.id for r in runs)
    # Details of Bob's failed run: inputs, each step, the error.
    await bot.driver.click(ALICE, listing, "run_details", failed.id)
    details = await wait_view(bot, ALICE)
    blob = json.dumps(details)
    assert "boom" in blob and "nothing" in blob and "fail" in blob and failed.id in blob

    # Run-only users see their own runs only.
    await bot.driver.slash(BOB, "history Hist")
    own = await eventually(
        lambda: (e := bot.emulator.last_ephemeral(BOB)) and "Details" in json.dumps(e) and e
    )
    assert values_of(own, "run_details") == [failed.id]
    alice_run = next(r for r in runs if r.started_by == ALICE)
    await bot.driver.block_action(BOB, "run_details", alice_run.id, message=own, channel=None)
    refusal = await wait_view(bot, BOB)
    assert "can't see this run" in json.dumps(refusal)

    # Anyone else is refused.
    await bot.driver.slash(CAROL, "history Hist")
    assert "can't see the runs" in await eventually(lambda: last_ephemeral_text(bot, CAROL))


async def test_an_unquoted_name_with_spaces_is_understood(bot: BotHarness) -> None:
    flow = await create_flow(bot, EXPENSE)
    await bot.driver.slash(ALICE, "run Expense report amount=3 reason=pens")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded" and run.inputs["amount"] == 3


@pytest.mark.parametrize(
    ("refusal", "words"),
    [
        (RunNotAllowed("A<b", ALICE, "automated"), "*A&lt;b* is an automated flow"),
        (RunNotAllowed("Ping", BOB, "owners_only"), "Only the owners of *Ping* can run"),
        (RunNotAllowed("Ping", CAROL, "not_shared"), "You can't run *Ping*: ask an owner"),
        (RunNotAllowed("Ping", ALICE, "disabled"), "*Ping* is turned off"),
        (RunRefused("Ping"), "the flow Ping is disabled"),
        (FlowGone("F1"), "This flow no longer exists: it was deleted."),
        (HistoryNotAllowed("Ping", CAROL), "You can't see the runs of *Ping*."),
        (RunNotFound("R1"), "This run no longer exists."),
        (RunHidden("R1", BOB), "You can't see this run."),
    ],
)
def test_run_refusals_carry_data_and_cards_word_them(refusal: FlowbotError, words: str) -> None:
    assert words in describe(refusal)
    assert "<@" not in str(refusal) and "*" not in str(refusal)


def test_a_cancellation_is_worded_with_a_mention_of_who_asked() -> None:
    at = datetime(2026, 1, 5, tzinfo=timezone.utc)
    deleted = CancelRequest("the flow was deleted", ALICE, at)
    assert cancel_reason(deleted) == f"the flow was deleted by <@{ALICE}>"
    assert cancel_reason(CancelRequest("stopped", None, at)) == "stopped"
    # Without words from cards, the engine records plain text.
    assert deleted.error == f"the flow was deleted (by {ALICE})"
