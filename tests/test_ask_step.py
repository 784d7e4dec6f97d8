"""The `ask` step from outside (SPEC §13): a Fill in button to each person asked (or in a
channel), a form built from the fields with errors shown on the field, exactly one answer
however submissions race, typed answers in the run, strangers told they were not asked,
pending forms listed with pending approvals, and a timeout on the fake clock."""

from __future__ import annotations

import asyncio
import copy
from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from emulator.driver import state_values
from emulator.server import SlackEmulator
from storage.asks_repo import AsksRepo
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    JSON,
    BotHarness,
    RestartableBot,
    all_text,
    by_label,
    create_flow,
    eventually,
    field_errors,
    finished_run,
    has_buttons,
    response_texts,
    slash,
    texts_in,
    wait_view,
    waiting_run,
)

FORM = """
name: Incident form
steps:
  - id: details
    type: ask
    to: ["<@U0BOB>", "<@U0CAROL>"]
    title: "Incident details"
    details: "Tell us what broke."
    fields:
      - {id: severity, label: Severity, options: [low, high], required: true}
      - {id: impact, label: Users affected, type: number, required: true}
      - {id: note, label: Note}
    timeout: 1h
    reminder: 20m
  - id: after
    type: post_message
    channel: "#general"
    text: >-
      {{ steps.details.outcome }} by {{ steps.details.responder }}:
      {{ steps.details.answers.severity }} {{ steps.details.answers.impact + 1 }}
      {{ steps.details.answers.note }}
"""


def fill_messages(bot: BotHarness, where: str) -> list[JSON]:
    return [
        m
        for m in bot.emulator.messages_in(where)
        if "Incident details" in m.get("text", "") and "Reminder" not in m.get("text", "")
    ]


async def fill_message(bot: BotHarness, where: str) -> JSON:
    found: list[JSON] = await eventually(
        lambda: [m for m in fill_messages(bot, where) if has_buttons(m)]
    )
    return copy.deepcopy(found[-1])


async def open_form(bot: BotHarness, user: str, message: JSON) -> JSON:
    assert (await bot.driver.click(user, message, "ask_fill")).ok
    return await wait_view(bot, user, "ask_submit")


async def ask_of(bot: BotHarness, run_id: str):  # type: ignore[no-untyped-def]
    record = await AsksRepo(bot.db).get_for_step(run_id, "details")
    assert record is not None
    return record


async def test_the_first_valid_answer_resumes_the_run_with_typed_answers(bot: BotHarness) -> None:
    flow = await create_flow(bot, FORM)
    await bot.driver.slash(ALICE, "run Incident form")
    to_bob = await fill_message(bot, BOB)
    to_carol = await fill_message(bot, CAROL)
    run = await waiting_run(bot, flow.id)

    # Listed with pending approvals in /flow approvals.
    listed = await slash(bot, BOB, "approvals")
    assert "Incident details" in listed.text and "form" in listed.text

    # A required field left empty: the error is shown on the field, nothing is recorded.
    view = await open_form(bot, BOB, to_bob)
    state = state_values(view, by_label(view, {"Severity": "high", "Note": "db"}))
    response = await bot.driver.view_submission(BOB, view["id"], state)
    assert field_errors(response) == {"ask_field:impact": "Required."}
    # A value the widget would not send (a forged payload) is refused on its field too.
    state["ask_field:impact"]["value"] = {"type": "number_input", "value": "12.5.1"}
    response = await bot.driver.view_submission(BOB, view["id"], state)
    errors = field_errors(response)
    assert list(errors) == ["ask_field:impact"] and "number" in errors["ask_field:impact"]
    assert (await ask_of(bot, run.id)).status == "pending"

    # Then a valid answer closes the modal and resumes the run with typed values.
    values = by_label(view, {"Severity": "high", "Users affected": "42", "Note": "db down"})
    response = await bot.driver.fill_and_submit(BOB, view["id"], values)
    assert response.ok and not (response.json or {}).get("response_action"), response.json
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    out = run.steps["details"].output
    assert out["outcome"] == "answered" and out["responder"] == BOB
    assert out["answers"] == {"severity": "high", "impact": 42, "note": "db down"}
    assert texts_in(bot, "#general")[-1] == f"answered by {BOB}: high 43 db down"

    # Both messages now show who answered, without the button (updated once the run
    # went on: the run resumes first).
    for where in (BOB, CAROL):
        [message] = await eventually(
            lambda where=where: [m for m in fill_messages(bot, where) if not has_buttons(m)]
        )
        assert f"<@{BOB}>" in all_text(message)
        assert "db down" in all_text(message)

    # Too late for Carol: she is told who answered; the answer stands.
    assert (await bot.driver.click(CAROL, to_carol, "ask_fill")).ok
    await eventually(lambda: [t for t in response_texts(bot, CAROL) if "already answered" in t])
    assert (await ask_of(bot, run.id)).responder == BOB
    listed = await slash(bot, BOB, "approvals")
    assert "Incident details" not in listed.text


CHANNEL_FORM = FORM.replace('to: ["<@U0BOB>", "<@U0CAROL>"]', 'to: "<#C0FINANCE>"')


async def test_a_channel_form_refuses_strangers_and_racing_submissions_give_one_answer(
    bot: BotHarness,
) -> None:
    flow = await create_flow(bot, CHANNEL_FORM)
    await bot.driver.slash(ALICE, "run Incident form")
    post = await fill_message(bot, "C0FINANCE")
    run = await waiting_run(bot, flow.id)
    # Posted in the channel, not DMed to its members.
    assert not fill_messages(bot, ALICE) and not fill_messages(bot, BOB)

    # Dave is not in #finance: he was not asked.
    assert (await bot.driver.click(DAVE, post, "ask_fill")).ok
    await eventually(lambda: [t for t in response_texts(bot, DAVE) if "not asked" in t])
    assert not [v for v in bot.emulator.views.values() if v.get("user") == DAVE]

    # Alice and Bob both open the form and submit at the same time: one answer.
    alice_view = await open_form(bot, ALICE, post)
    bob_view = await open_form(bot, BOB, post)
    answers = {"Severity": "low", "Users affected": "3", "Note": "x"}
    submissions = await asyncio.gather(
        bot.driver.fill_and_submit(ALICE, alice_view["id"], by_label(alice_view, answers)),
        bot.driver.fill_and_submit(BOB, bob_view["id"], by_label(bob_view, answers)),
    )
    closed = [s for s in submissions if not (s.json or {}).get("response_action")]
    refused = [s for s in submissions if (s.json or {}).get("response_action") == "update"]
    assert len(closed) == 1 and len(refused) == 1
    assert "already answered" in all_text((refused[0].json or {})["view"])
    [run] = await finished_run(bot, flow.id)
    record = await ask_of(bot, run.id)
    assert record.status == "answered" and record.responder in (ALICE, BOB)
    assert run.steps["details"].output["responder"] == record.responder
    assert len([t for t in texts_in(bot, "#general") if t.startswith("answered")]) == 1
    [message] = await eventually(
        lambda: [m for m in fill_messages(bot, "C0FINANCE") if not has_buttons(m)]
    )
    assert f"<@{record.responder}>" in all_text(message)


@pytest.fixture
async def restartable(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> AsyncIterator[RestartableBot]:
    bot = RestartableBot(emulator, mongo_uri, db_name, FakeClock())
    try:
        yield bot
    finally:
        await bot.stop()


async def test_a_form_nobody_fills_in_is_reminded_then_expires(
    restartable: RestartableBot,
) -> None:
    clock = restartable.clock
    bot = await restartable.start()
    flow = await create_flow(bot, FORM.replace("answers.impact + 1", "answers.impact"))
    await bot.driver.slash(ALICE, "run Incident form")
    to_carol = await fill_message(bot, CAROL)
    run = await waiting_run(bot, flow.id)
    assert run.wake_at == clock.now() + timedelta(minutes=40)

    clock.advance(timedelta(minutes=41))
    await eventually(
        lambda: [m for m in bot.emulator.messages_in(CAROL) if "Reminder" in m["text"]]
    )
    clock.advance(timedelta(minutes=30))
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    out = run.steps["details"].output
    assert out["outcome"] == "expired" and out["responder"] is None
    assert out["answers"] == {"severity": None, "impact": None, "note": None}
    [message] = fill_messages(bot, CAROL)
    assert not has_buttons(message) and "Expired" in all_text(message)
    assert (await bot.driver.click(CAROL, to_carol, "ask_fill")).ok
    await eventually(lambda: [t for t in response_texts(bot, CAROL) if "expired" in t])
    assert texts_in(bot, "#general")[-1].strip() == "expired by :"


async def test_a_waiting_form_is_in_the_app_home_and_is_cancelled_with_its_run(
    bot: BotHarness,
) -> None:
    flow = await create_flow(bot, FORM)
    await bot.driver.slash(ALICE, "run Incident form")
    to_bob = await fill_message(bot, BOB)
    run = await waiting_run(bot, flow.id)
    home = await eventually(lambda: bot.emulator.home_views.get(BOB))
    assert "Forms to fill in" in all_text(home) and "Incident details" in all_text(home)
    # The App Home's button opens the same form.
    assert (await bot.driver.click_home(BOB, "ask_fill")).ok
    assert (await wait_view(bot, BOB, "ask_submit"))["blocks"]

    # /flow show describes the step.
    shown = await slash(bot, ALICE, 'show "Incident form"')
    assert "to fill in: Incident details (3 fields)" in shown.text

    # Deleting the flow cancels the run and its form: no answer counts any more.
    since = len(bot.emulator.ephemerals)
    assert (await bot.driver.slash(ALICE, 'delete "Incident form"')).ok
    question = await eventually(
        lambda: next(
            (e for e in bot.emulator.ephemerals[since:] if "cannot be undone" in all_text(e)),
            None,
        )
    )
    assert (await bot.driver.click(ALICE, question, "flow_delete_confirm")).ok
    await eventually(lambda: _status(bot, run.id, "cancelled"))
    await eventually(lambda: [m for m in fill_messages(bot, BOB) if "Cancelled" in all_text(m)])
    assert (await bot.driver.click(BOB, to_bob, "ask_fill")).ok
    await eventually(lambda: [t for t in response_texts(bot, BOB) if "cancelled" in t])
    await eventually(lambda: "Incident details" not in all_text(bot.emulator.home_views[BOB]))


async def _status(bot: BotHarness, run_id: str, status: str) -> bool:
    return (await ask_of(bot, run_id)).status == status


LOOP_FORM = """
name: Form per item
steps:
  - id: each
    type: for_each
    items: ["north", "south"]
    steps:
      - id: q
        type: ask
        to: ["<@U0BOB>"]
        title: "Incident details {{ item }}"
        fields:
          - {id: note, label: Note, required: true}
  - id: after
    type: post_message
    channel: "#general"
    text: >-
      {{ steps.each.results | map(attribute='q') | map(attribute='answers')
      | map(attribute='note') | join(',') }}
"""


async def test_an_ask_in_a_loop_asks_once_per_iteration(bot: BotHarness) -> None:
    flow = await create_flow(bot, LOOP_FORM)
    await bot.driver.slash(ALICE, "run Form per item")
    for place, note in (("north", "n1"), ("south", "s1")):
        found: list[JSON] = await eventually(
            lambda place=place: [
                m
                for m in bot.emulator.messages_in(BOB)
                if f"Incident details {place}" in m.get("text", "") and has_buttons(m)
            ]
        )
        view = await open_form(bot, BOB, copy.deepcopy(found[-1]))
        values = by_label(view, {"Note": note})
        assert (await bot.driver.fill_and_submit(BOB, view["id"], values)).ok
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    assert texts_in(bot, "#general")[-1] == "n1,s1"
