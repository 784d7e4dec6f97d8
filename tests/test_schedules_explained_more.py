"""SPEC §14 from outside, continued: `/flow show` lists the schedule's policies, a trigger's
`when` and a flow's `alert_after`; the missed-slot DM gives the real reason; a manual run
refused by `when` is in the trigger log (a schedule's or an event's `when` does not filter
a start by hand); `/flow why` counts the events that reached no trigger; the failure
streak is deleted with its flow."""

from __future__ import annotations

import asyncio
from datetime import datetime, timedelta, timezone

from emulator.server import SlackEmulator
from flows.records import RunTrigger
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    BOB,
    BotHarness,
    all_text,
    command,
    create_flow,
    deps,
    eventually,
    finished_run,
    make_settings,
    runs_of,
    slash,
    start_flowbot,
)

UTC = timezone.utc
START = datetime(2099, 1, 5, 9, 0, 30, tzinfo=UTC)

POLICIES = """
name: Policies
kind: scheduled
alert_after: 5
trigger:
  type: schedule
  every: 1h
  overlap: queue
  jitter: 10m
  catchup_window: 2h
  when: "{{ trigger.slot is defined }}"
steps:
  - {type: post_message, channel: "#general", text: "tick"}
"""

QUIET = """
name: Quiet
kind: automated
alert_after: 0
trigger:
  type: message
  channel: "#general"
  pattern: "^deploy"
  when: "{{ 'prod' in trigger.text }}"
steps:
  - {type: post_message, channel: "#general", text: "seen"}
"""

PLAIN = """
name: Plain
kind: scheduled
trigger: {type: schedule, every: 1h}
steps:
  - {type: post_message, channel: "#general", text: "tick"}
"""


async def show(bot: BotHarness, name: str) -> str:
    return (await slash(bot, ALICE, f"show {name}", settle=0.05)).text


async def test_show_lists_the_schedule_policies_the_condition_and_alerts(bot: BotHarness) -> None:
    await create_flow(bot, POLICIES)
    await create_flow(bot, QUIET)
    await create_flow(bot, PLAIN)
    text = await show(bot, "Policies")
    assert "overlap `queue`" in text and "jitter 10m" in text and "catch-up window 2h" in text
    assert "`{{ trigger.slot is defined }}`" in text
    assert "after 5 failed runs in a row" in text
    quiet = await show(bot, "Quiet")
    assert "Only when:" in quiet and "'prod' in trigger.text" in quiet
    assert "Failure alerts:* off" in quiet and "Schedule policies" not in quiet
    plain = await show(bot, "Plain")
    assert "overlap `skip`" in plain and "jitter none" in plain and "catch-up window 1d" in plain
    assert "Failure alerts" not in plain and "Only when" not in plain


CATCH_UP = """
name: Catch up
kind: scheduled
trigger: {type: schedule, cron: "0 * * * *", misfire: MISFIRE, catchup_window: 2m}
steps:
  - {type: post_message, channel: "#general", text: "caught up"}
"""


async def _missed_dm(emulator: SlackEmulator, mongo_uri: str, db_name: str, misfire: str) -> str:
    clock = FakeClock(START)
    settings = make_settings(emulator, mongo_uri, db_name)
    first = await start_flowbot(settings, clock)
    flow = await create_flow(first, CATCH_UP.replace("MISFIRE", misfire))
    await first.stop()
    clock.advance(timedelta(hours=3, minutes=5))  # 12:00 is 5.5 minutes old: past 2m
    second = await start_flowbot(settings, clock)
    try:
        found = await eventually(
            lambda: [all_text(m) for m in emulator.messages_in(ALICE) if "missed" in all_text(m)]
        )
        assert await runs_of(second, flow.id) == []
        insight = deps(second).insight
        assert insight is not None
        [decision] = await insight.trigger_log.latest(flow.id, 5)
        assert decision.reason == "missed"
        return f"{found[-1]}\n{decision.detail}"
    finally:
        await second.stop()


async def test_the_missed_slot_dm_says_the_catch_up_window_was_passed(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> None:
    text = await _missed_dm(emulator, mongo_uri, db_name, "run_once")
    assert "misfire policy is *run_once*" in text and "catch-up window (*2m*)" in text
    assert "misfire policy is *skip*" not in text
    assert "older than the catch-up window (2m)" in text  # the trigger log's detail


async def test_the_missed_slot_dm_says_the_skip_policy(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> None:
    text = await _missed_dm(emulator, mongo_uri, db_name, "skip")
    assert "misfire policy is *skip*" in text and "catch-up window" not in text
    assert "misfire policy skip" in text


GATED = """
name: Gated
kind: instant
trigger: {type: manual, when: "{{ trigger.user == 'BOBID' }}"}
steps:
  - {type: post_message, channel: "#general", text: "ran"}
"""

NEVER_ON_SCHEDULE = """
name: Never on schedule
kind: scheduled
trigger: {type: schedule, every: 1h, when: "{{ 1 == 2 }}"}
steps:
  - {type: post_message, channel: "#general", text: "by hand"}
"""


async def test_a_manual_run_refused_by_when_is_in_the_trigger_log(bot: BotHarness) -> None:
    flow = await create_flow(bot, GATED.replace("BOBID", BOB))
    await command(bot, ALICE, "run Gated", "condition is false")
    assert await runs_of(bot, flow.id) == []
    text = (await slash(bot, ALICE, "why Gated", settle=0.05)).text
    assert "manual: not run: its `when` condition was false" in text
    assert f"started by {ALICE}" in text
    # A schedule's `when` is about its slots: the owner's run by hand is not filtered.
    scheduled = await create_flow(bot, NEVER_ON_SCHEDULE)
    await slash(bot, ALICE, "run Never on schedule", settle=0.05)
    [run] = await finished_run(bot, scheduled.id)
    assert run.status == "succeeded"


async def test_why_counts_the_messages_that_reached_no_trigger(bot: BotHarness) -> None:
    bot.emulator.add_channel("C0RANDOM", "random", members=[ALICE, BOB])
    await create_flow(bot, QUIET)
    for n in range(3):
        await bot.driver.event(bot.driver.message_event(BOB, "C0RANDOM", f"chat {n}"))
    await bot.driver.event(bot.driver.message_event(BOB, "C0RANDOM", "one more"))
    await asyncio.sleep(0.1)
    text = (await slash(bot, ALICE, "why Quiet", settle=0.05)).text
    assert "In the last hour, 4 messages in this workspace reached no trigger" in text
    # A schedule has no unmatched events to count.
    await create_flow(bot, PLAIN)
    assert "reached no trigger" not in (await slash(bot, ALICE, "why Plain", settle=0.05)).text


FRAGILE = """
name: Fragile
kind: instant
alert_after: 2
inputs: [{id: mode, default: broken}]
steps:
  - {type: post_message, channel: "#general", text: "{{ inputs.mode.nothing }}"}
"""


async def test_the_failure_streak_is_deleted_with_its_flow(bot: BotHarness) -> None:
    flow = await create_flow(bot, FRAGILE)
    runner = deps(bot).runner
    started = await runner.start_run(flow, RunTrigger(type="manual", user=ALICE), {"mode": "x"})
    await runner.wait_for(started.id)
    assert await bot.db["failure_streaks"].count_documents({"_id": flow.id}) == 1
    question = await command(bot, ALICE, "delete Fragile", "cannot be undone")
    await bot.driver.click(ALICE, question, "flow_delete_confirm")
    await eventually(lambda: "Deleted" in all_text(question))
    await eventually(lambda: _gone(bot, flow.id))


async def _gone(bot: BotHarness, flow_id: str) -> bool:
    return await bot.db["failure_streaks"].count_documents({"_id": flow_id}) == 0
