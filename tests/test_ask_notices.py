"""The `ask` step's loose ends, from outside (SPEC §8, §13): the notify channel hears of
forms as it hears of approvals (requested, answered by whom, expired), the run's starter
is told when a form expires, `to` may name a channel as `#name` (for approvals too), a
restart between a recorded answer and the run's resumption resumes the run once, and
forms close with their run however it is cancelled."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from emulator.server import SlackEmulator
from storage.approvals_repo import ApprovalsRepo
from storage.asks_repo import AsksRepo
from storage.mongo import Storage
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    JSON,
    BotHarness,
    RestartableBot,
    all_text,
    by_label,
    create_flow,
    eventually,
    finished_run,
    has_buttons,
    response_texts,
    runs_of,
    slash,
    texts_in,
    waiting_run,
)
from tests.test_ask_step import fill_message, fill_messages, open_form

NOTIFIED = """
name: Incident form
notify: "#ops-bots"
steps:
  - id: details
    type: ask
    to: ["<@U0CAROL>", "#finance"]
    title: "Incident details"
    fields:
      - {id: severity, label: Severity, options: [low, high], required: true}
    timeout: 1h
  - id: after
    type: post_message
    channel: "#general"
    text: "{{ steps.details.outcome }} {{ steps.details.answers.severity }}"
"""


async def test_the_notify_channel_hears_of_a_form_asked_of_a_channel_by_name(
    bot: BotHarness,
) -> None:
    flow = await create_flow(bot, NOTIFIED)
    # /flow show keeps mentions as mentions (Slack renders them), names as written.
    shown = await slash(bot, ALICE, 'show "Incident form"')
    assert "ask <@U0CAROL>, #finance to fill in: Incident details" in shown.text
    assert "&lt;@" not in shown.text

    await bot.driver.slash(ALICE, "run Incident form")
    post = await fill_message(bot, "C0FINANCE")  # `#finance` resolved to the channel
    await fill_message(bot, CAROL)
    run = await waiting_run(bot, flow.id)
    record = await AsksRepo(bot.db).get_for_step(run.id, "details")
    assert record is not None and record.channels == ["C0FINANCE"]
    assert set(record.people) == {ALICE, BOB, CAROL}

    requested = await eventually(
        lambda: [m for m in bot.emulator.messages_in("#ops-bots") if "Form requested" in m["text"]]
    )
    shown_notice = all_text(requested[0])
    assert "Incident details" in shown_notice and "<#C0FINANCE>" in shown_notice
    assert f"<@{CAROL}>" in shown_notice

    view = await open_form(bot, BOB, post)
    response = await bot.driver.fill_and_submit(
        BOB, view["id"], by_label(view, {"Severity": "high"})
    )
    assert response.ok
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    answered = await eventually(
        lambda: [m for m in bot.emulator.messages_in("#ops-bots") if "answered" in m["text"]]
    )
    assert len(answered) == 1 and f"<@{BOB}>" in all_text(answered[0])
    # Nobody's form expired: the starter is not told anything.
    assert not [m for m in bot.emulator.messages_in(ALICE) if "Your form" in m["text"]]


async def test_a_channel_by_name_that_does_not_exist_fails_the_step_clearly(
    bot: BotHarness,
) -> None:
    flow = await create_flow(bot, NOTIFIED.replace('"#finance"', '"#no-such-room"'))
    await bot.driver.slash(ALICE, "run Incident form")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "failed"
    assert run.error is not None and "#no-such-room" in run.error
    assert "no channel by that name that the bot can see" in run.error
    assert not fill_messages(bot, CAROL)


APPROVAL = """
name: Spend
steps:
  - id: ok
    type: approval
    approvers: ["#finance"]
    title: "Spend 10"
"""


async def test_approvers_may_name_a_channel_by_name(bot: BotHarness) -> None:
    flow = await create_flow(bot, APPROVAL)
    await bot.driver.slash(ALICE, "run Spend")
    run = await waiting_run(bot, flow.id)
    record = await ApprovalsRepo(bot.db).get_for_step(run.id, "ok")
    assert record is not None and sorted(record.approvers) == sorted([ALICE, BOB])
    await eventually(lambda: [m for m in bot.emulator.messages_in(BOB) if "Spend 10" in m["text"]])


@pytest.fixture
async def restartable(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> AsyncIterator[RestartableBot]:
    bot = RestartableBot(emulator, mongo_uri, db_name, FakeClock())
    try:
        yield bot
    finally:
        await bot.stop()


async def test_an_expired_form_is_told_to_the_starter_and_the_notify_channel(
    restartable: RestartableBot,
) -> None:
    clock = restartable.clock
    assert isinstance(clock, FakeClock)
    bot = await restartable.start()
    flow = await create_flow(bot, NOTIFIED)
    await bot.driver.slash(ALICE, "run Incident form")
    await fill_message(bot, CAROL)
    await waiting_run(bot, flow.id)

    clock.advance(timedelta(minutes=61))
    [run] = await finished_run(bot, flow.id)
    assert run.steps["details"].output["outcome"] == "expired"
    told = await eventually(
        lambda: [m for m in bot.emulator.messages_in(ALICE) if "Your form" in m["text"]]
    )
    assert len(told) == 1 and "expired" in all_text(told[0])
    assert "Incident details" in all_text(told[0]) and "Incident form" in all_text(told[0])
    expired = await eventually(
        lambda: [m for m in bot.emulator.messages_in("#ops-bots") if "expired" in m["text"]]
    )
    assert len(expired) == 1 and "Expired" in all_text(expired[0])
    [message] = fill_messages(bot, CAROL)
    assert not has_buttons(message)


async def test_a_restart_between_the_answer_and_the_resumption_resumes_the_run_once(
    restartable: RestartableBot, mongo_uri: str, db_name: str
) -> None:
    clock = restartable.clock
    assert clock is not None
    bot = await restartable.start()
    flow = await create_flow(bot, NOTIFIED)
    await bot.driver.slash(ALICE, "run Incident form")
    await fill_message(bot, CAROL)
    run = await waiting_run(bot, flow.id)
    await restartable.stop()

    # The process recorded Carol's answer (the compare-and-set) and died before it
    # resumed the run or updated the messages.
    storage = Storage(mongo_uri, db_name)
    try:
        record = await AsksRepo(storage.db).get_for_step(run.id, "details")
        assert record is not None
        answered = await AsksRepo(storage.db).answer(
            record.id, CAROL, {"severity": "low"}, clock.now()
        )
        assert answered is not None
    finally:
        storage.close()

    bot = await restartable.start()
    [done] = await finished_run(bot, flow.id)
    assert done.status == "succeeded", done.error
    assert done.steps["details"].output["responder"] == CAROL
    await eventually(lambda: [m for m in fill_messages(bot, CAROL) if not has_buttons(m)])

    # Once: another restart neither resumes it again nor posts again.
    bot = await restartable.restart()
    await bot.flowbot.deps.asks.wait_idle()
    assert texts_in(bot, "#general") == ["answered low"]
    assert len(await runs_of(bot, flow.id)) == 1
    fresh = await AsksRepo(bot.db).get_for_step(run.id, "details")
    assert fresh is not None and fresh.resumed


PARALLEL = """
name: Two forms
steps:
  - id: both
    type: parallel
    branches:
      - - id: first
          type: ask
          to: "<@U0BOB>"
          title: "First form"
          fields: [{id: a, label: A}]
      - - id: second
          type: ask
          to: "<@U0CAROL>"
          title: "Second form"
          fields: [{id: b, label: B}]
"""


async def test_every_form_of_a_cancelled_run_closes_even_in_parallel_branches(
    bot: BotHarness,
) -> None:
    flow = await create_flow(bot, PARALLEL)
    await bot.driver.slash(ALICE, "run Two forms")
    first = copy.deepcopy(
        await eventually(
            lambda: [m for m in bot.emulator.messages_in(BOB) if "First form" in m["text"]]
        )
    )
    await eventually(
        lambda: [m for m in bot.emulator.messages_in(CAROL) if "Second form" in m["text"]]
    )
    run = await waiting_run(bot, flow.id)
    cancelled = await bot.flowbot.deps.runner.cancel_flow_runs(
        run.team_id, flow.id, ALICE, "stopped by hand"
    )
    assert cancelled == 1

    def closed(user: str, title: str) -> list[JSON]:
        return [
            m
            for m in bot.emulator.messages_in(user)
            if title in m["text"] and "Cancelled" in all_text(m) and not has_buttons(m)
        ]

    await eventually(lambda: closed(BOB, "First form") and closed(CAROL, "Second form"))
    # A click on a copy of the old message (a stale client) is told it was cancelled.
    assert (await bot.driver.click(BOB, first[0], "ask_fill")).ok
    await eventually(lambda: [t for t in response_texts(bot, BOB) if "cancelled" in t])
    listed = await slash(bot, CAROL, "approvals")
    assert "Second form" not in listed.text


async def test_a_form_whose_run_was_cancelled_during_a_crash_closes_when_clicked(
    restartable: RestartableBot, mongo_uri: str, db_name: str
) -> None:
    bot = await restartable.start()
    flow = await create_flow(bot, NOTIFIED)
    await bot.driver.slash(ALICE, "run Incident form")
    to_carol = await fill_message(bot, CAROL)
    run = await waiting_run(bot, flow.id)
    await restartable.stop()

    # The run's cancellation was recorded, then the process died before it closed the
    # run's forms.
    storage = Storage(mongo_uri, db_name)
    try:
        await storage.db["runs"].update_one(
            {"_id": run.id},
            {
                "$set": {
                    "status": "cancelled",
                    "finished_at": datetime.now(timezone.utc),
                    "error": "Cancelled: the flow was deleted",
                    "wake_at": None,
                    "waiting_for": None,
                }
            },
        )
    finally:
        storage.close()

    bot = await restartable.start()
    assert (await bot.driver.click(CAROL, to_carol, "ask_fill")).ok
    await eventually(lambda: [t for t in response_texts(bot, CAROL) if "cancelled" in t])
    assert not [v for v in bot.emulator.views.values() if v.get("user") == CAROL]
    await eventually(
        lambda: [
            m
            for m in fill_messages(bot, CAROL)
            if "the run was cancelled" in all_text(m) and not has_buttons(m)
        ]
    )
    record = await AsksRepo(bot.db).get_for_step(run.id, "details")
    assert record is not None and record.status == "cancelled"
