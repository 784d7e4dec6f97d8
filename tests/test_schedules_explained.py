"""SPEC §14 from outside: overlap (skip, queue, allow) with a slow run, `/flow next` across a
daylight-saving change, `/flow backfill` once and only once with its limits and rights,
`when` on message and webhook triggers, `/flow why`, failure alerts and recovery, and the
catch-up window after a restart.

Schedules run on a fake clock set in 2099 (APScheduler's real-time wake-ups never fire);
a slot is reached by moving the clock and ticking the flow, as a wake-up would.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone

import pytest

from emulator.server import SlackEmulator
from flows.records import RunTrigger
from flows.scheduling import ScheduleService, schedule_run_key
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    TEAM,
    BotHarness,
    create_flow,
    deps,
    dms,
    eventually,
    finished_run,
    make_settings,
    post_webhook,
    runs_of,
    save_flow,
    slash,
    start_bot,
    start_flowbot,
    stop_bot,
)

UTC = timezone.utc
START = datetime(2099, 1, 5, 9, 0, 30, tzinfo=UTC)


@pytest.fixture
async def clock() -> FakeClock:
    return FakeClock(START)


@pytest.fixture
async def timed_bot(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, clock: FakeClock
) -> AsyncIterator[BotHarness]:
    harness = await start_bot(emulator, make_settings(emulator, mongo_uri, db_name), clock)
    try:
        yield harness
    finally:
        await stop_bot(harness)


def schedules(bot: BotHarness) -> ScheduleService:
    return next(s for s in bot.flowbot.services if isinstance(s, ScheduleService))


SLOW = """
name: Slow hourly
kind: scheduled
trigger: {type: schedule, every: 1h, overlap: POLICY}
steps:
  - {type: delay, duration: 90m}
  - {type: post_message, channel: "#general", text: "done {{ trigger.slot }}"}
"""


async def next_slot(bot: BotHarness, clock: FakeClock, flow_id: str) -> None:
    """Move the clock to the next slot and tick the flow, as its wake-up does."""
    slot = schedules(bot).next_wakeup(flow_id)
    assert slot is not None
    clock.current = slot + timedelta(seconds=1)
    await schedules(bot).tick(TEAM, flow_id)


async def why(bot: BotHarness, flow: str, user: str = ALICE) -> str:
    return (await slash(bot, user, f"why {flow}", settle=0.05)).text


async def test_overlap_skip_records_the_skip_and_runs_nothing_more(
    timed_bot: BotHarness, clock: FakeClock
) -> None:
    flow = await create_flow(timed_bot, SLOW.replace("POLICY", "skip"))
    await next_slot(timed_bot, clock, flow.id)  # 10:00: runs, waits 90 minutes
    [first] = await eventually(lambda: _waiting(timed_bot, flow.id))
    await next_slot(timed_bot, clock, flow.id)  # 11:00: the 10:00 run is still waiting
    await asyncio.sleep(0.1)
    assert [r.id for r in await runs_of(timed_bot, flow.id)] == [first.id]
    text = await why(timed_bot, "Slow hourly")
    assert "previous run was still in progress" in text and first.id in text
    assert f"started run `{first.id}`" in text


async def test_overlap_queue_runs_one_waiting_slot_when_the_run_ends(
    timed_bot: BotHarness, clock: FakeClock
) -> None:
    flow = await create_flow(timed_bot, SLOW.replace("POLICY", "queue"))
    await next_slot(timed_bot, clock, flow.id)  # 10:00 runs
    [first] = await eventually(lambda: _waiting(timed_bot, flow.id))
    await next_slot(timed_bot, clock, flow.id)  # 11:00 is queued
    await asyncio.sleep(0.05)
    clock.advance(timedelta(minutes=20))  # 11:20, still before 12:00
    assert len(await runs_of(timed_bot, flow.id)) == 1
    # The 10:00 run's delay ends at 11:30: it finishes, and the queued 11:00 slot starts.
    clock.current = datetime(2099, 1, 5, 11, 31, tzinfo=UTC)
    await deps(timed_bot).runner.wake_due()
    runs = await eventually(lambda: _at_least(timed_bot, flow.id, 2))
    second = next(r for r in runs if r.id != first.id)
    assert second.run_key == schedule_run_key(flow.id, datetime(2099, 1, 5, 11, tzinfo=UTC))
    assert second.trigger.data.get("queued") is True
    assert "queued behind the run in progress" in await why(timed_bot, "Slow hourly")


async def test_overlap_allow_starts_a_second_run(timed_bot: BotHarness, clock: FakeClock) -> None:
    flow = await create_flow(timed_bot, SLOW.replace("POLICY", "allow"))
    await next_slot(timed_bot, clock, flow.id)
    await eventually(lambda: _waiting(timed_bot, flow.id))
    await next_slot(timed_bot, clock, flow.id)
    runs = await eventually(lambda: _at_least(timed_bot, flow.id, 2))
    assert len(runs) == 2


async def _waiting(bot: BotHarness, flow_id: str) -> list | None:  # type: ignore[type-arg]
    runs = await runs_of(bot, flow_id)
    return runs if runs and all(r.status == "waiting" for r in runs) else None


async def _at_least(bot: BotHarness, flow_id: str, n: int) -> list | None:  # type: ignore[type-arg]
    runs = await runs_of(bot, flow_id)
    return runs if len(runs) >= n else None


# ------------------------------------------------------------------ next, backfill

DAILY_PARIS = """
name: Morning
kind: scheduled
trigger: {type: schedule, cron: "0 9 * * *", timezone: Europe/Paris}
steps:
  - {type: post_message, channel: "#general", text: "good morning"}
"""

HOURLY = """
name: Hourly
kind: scheduled
trigger: {type: schedule, cron: "0 * * * *"}
steps:
  - {type: post_message, channel: "#general", text: "report {{ trigger.slot }}"}
"""


async def test_next_firing_times_cross_the_daylight_saving_change(
    timed_bot: BotHarness, clock: FakeClock
) -> None:
    clock.current = datetime(2099, 3, 27, 12, tzinfo=UTC)  # Paris moves to CEST on the 29th
    await create_flow(timed_bot, DAILY_PARIS)
    text = (await slash(timed_bot, ALICE, "next Morning 4", settle=0.05)).text
    assert "Next runs of Morning" in text and "(Europe/Paris)" in text
    assert "2099-03-28 09:00 CET" in text
    assert "2099-03-29 09:00 CEST" in text  # 07:00 UTC, not 08:00
    assert "2099-03-31 09:00 CEST" in text and "2099-04-01" not in text
    shown = (await slash(timed_bot, ALICE, "show Morning", settle=0.05)).text
    assert "Sat 09:00 CET in Europe/Paris" in shown  # /flow show: the same computation
    refused = (await slash(timed_bot, CAROL, "next Morning", settle=0.05)).text
    assert "only its owners" in refused


async def test_backfill_runs_each_slot_once_within_its_limits_and_rights(
    timed_bot: BotHarness,
) -> None:
    flow = await create_flow(timed_bot, HOURLY)
    answer = (
        await slash(timed_bot, ALICE, "backfill Hourly 2099-01-05T06:00Z 2099-01-05T08:00Z")
    ).text
    assert "3 run(s) started" in answer
    runs = await eventually(lambda: _at_least(timed_bot, flow.id, 3))
    assert sorted(r.run_key or "" for r in runs) == [
        schedule_run_key(flow.id, datetime(2099, 1, 5, h, tzinfo=UTC)) for h in (6, 7, 8)
    ]
    again = (
        await slash(timed_bot, ALICE, "backfill Hourly 2099-01-05T05:00Z 2099-01-05T08:00Z")
    ).text
    assert "1 run(s) started" in again and "3 slot(s) had run already" in again
    await asyncio.sleep(0.2)
    assert len(await runs_of(timed_bot, flow.id)) == 4
    too_many = (await slash(timed_bot, ALICE, "backfill Hourly 2098-12-01 2099-01-01")).text
    assert "at most 100" in too_many
    assert (
        "only its owners"
        in (await slash(timed_bot, BOB, "backfill Hourly 2099-01-01 2099-01-02")).text
    )
    bad = (await slash(timed_bot, ALICE, "backfill Hourly yesterday today")).text
    assert "not a range of past times" in bad
    assert len(await runs_of(timed_bot, flow.id)) == 4


# ------------------------------------------------------------------ when, why

GUARDED = """
name: Prod alerts
kind: automated
trigger:
  type: message
  channel: "#incidents"
  pattern: "^alert"
  when: "{{ 'prod' in trigger.text }}"
steps:
  - {type: post_message, channel: "#general", text: "{{ trigger.text }}"}
"""

HOOK = """
name: Deploys
kind: automated
trigger: {type: webhook, when: "{{ trigger.body.env == 'prod' }}"}
steps:
  - {type: post_message, channel: "#general", text: "deploy {{ trigger.body.env }}"}
"""


async def test_when_on_a_message_trigger_and_why_names_the_run_and_the_filtered_event(
    bot: BotHarness,
) -> None:
    bot.emulator.add_channel("C0INCIDENTS", "incidents", members=[ALICE, BOB])
    flow = await create_flow(bot, GUARDED)
    await bot.driver.event(bot.driver.message_event(BOB, "C0INCIDENTS", "alert staging slow"))
    filtered_id = bot.driver.last_event_id
    await bot.driver.event(bot.driver.message_event(BOB, "C0INCIDENTS", "alert prod down"))
    await bot.driver.event(bot.driver.message_event(BOB, "C0INCIDENTS", "lunch?"))
    emu = bot.emulator
    own = bot.driver.message_event(emu.bot_user_id, "C0INCIDENTS", "alert prod", bot_id=emu.bot_id)
    await bot.driver.event(own)
    [run] = await finished_run(bot, flow.id)
    assert run.trigger.data["text"] == "alert prod down"
    text = await eventually(lambda: _why_has(bot, "Prod alerts", "condition was false"))
    assert f"started run `{run.id}`" in text and filtered_id in text
    # The message that reached no trigger is counted, not recorded per flow.
    records = await bot.db["trigger_log"].find({"flow_id": flow.id}).to_list(None)
    assert sorted(r["reason"] for r in records) == ["filtered", "own_message", "started"]
    assert "the message was Flowbot's own" in await why(bot, "Prod alerts")
    assert "only its owners" in await why(bot, "Prod alerts", CAROL)


async def _why_has(bot: BotHarness, flow: str, words: str) -> str | None:
    text = await why(bot, flow)
    return text if words in text else None


async def test_when_on_a_webhook_trigger(bot: BotHarness) -> None:
    saved = await save_flow(bot, HOOK)
    token = saved.webhook_token
    assert token is not None
    status, answer = await post_webhook(
        bot, saved.flow.id, '{"env": "dev"}', {"X-Flowbot-Token": token}
    )
    assert (status, answer.get("filtered")) == (200, True)
    status, answer = await post_webhook(
        bot, saved.flow.id, '{"env": "prod"}', {"X-Flowbot-Token": token}
    )
    assert status == 202
    status, _ = await post_webhook(
        bot, saved.flow.id, '{"env": "prod"}', {"X-Flowbot-Token": "nope"}
    )
    assert status == 401
    [run] = await finished_run(bot, saved.flow.id)
    assert run.id == answer["run_id"]
    text = await why(bot, "Deploys")
    assert "wrong or missing token" in text and "condition was false" in text
    assert f"started run `{run.id}`" in text


# ------------------------------------------------------------------ alerts

FRAGILE = """
name: Fragile
kind: instant
alert_after: 2
inputs: [{id: mode, default: ok}]
steps:
  - type: post_message
    channel: "#general"
    text: "{{ 'hello' if inputs.mode == 'ok' else inputs.mode.nothing }}"
"""


async def test_the_owner_hears_after_two_failures_once_and_on_recovery(bot: BotHarness) -> None:
    flow = await create_flow(bot, FRAGILE)
    runner = deps(bot).runner

    async def run(where: str) -> None:
        started = await runner.start_run(
            flow, RunTrigger(type="manual", user=ALICE), {"mode": where}
        )
        await runner.wait_for(started.id)

    await run("broken")
    await asyncio.sleep(0.1)
    assert dms(bot, ALICE, "in a row") == []
    await run("broken")
    await eventually(lambda: dms(bot, ALICE, "failed 2 runs in a row"))
    await run("broken")  # a third failure: no second alert
    await asyncio.sleep(0.2)
    assert len(dms(bot, ALICE, "in a row")) == 1
    await run("ok")
    await eventually(lambda: dms(bot, ALICE, "succeeded again"))
    await run("ok")
    await asyncio.sleep(0.2)
    assert len(dms(bot, ALICE, "succeeded again")) == 1


# ------------------------------------------------------------------ catch-up window

CATCH_UP = """
name: Catch up
kind: scheduled
trigger: {type: schedule, cron: "0 * * * *", misfire: run_once, catchup_window: WINDOW}
steps:
  - {type: post_message, channel: "#general", text: "caught up"}
"""


@pytest.mark.parametrize(("window", "runs"), [("10m", 1), ("2m", 0)])
async def test_the_catch_up_window_after_a_restart(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, window: str, runs: int
) -> None:
    clock = FakeClock(START)
    settings = make_settings(emulator, mongo_uri, db_name)
    first = await start_flowbot(settings, clock)
    flow = await create_flow(first, CATCH_UP.replace("WINDOW", window))
    await first.stop()
    clock.advance(timedelta(hours=3, minutes=5))  # back at 12:05:30; 12:00 is 5.5 min old
    second = await start_flowbot(settings, clock)
    try:
        await asyncio.sleep(0.3)
        assert len(await runs_of(second, flow.id)) == runs
        reasons = [d.reason for d in await deps(second).insight.trigger_log.latest(flow.id, 5)]  # type: ignore[union-attr]
        assert reasons == (["started"] if runs else ["missed"])
    finally:
        await second.stop()


def test_jitter_is_the_same_in_every_process_and_within_its_bound() -> None:
    from flows.definition import ScheduleTrigger
    from flows.schedule_policies import jitter_of

    trigger = ScheduleTrigger(every="1h", jitter="10m")
    slot = datetime(2099, 1, 5, 10, tzinfo=UTC)
    delays = {jitter_of(trigger, f"F{i}", slot) for i in range(50)}
    assert all(timedelta(0) <= d < timedelta(minutes=10) for d in delays) and len(delays) > 10
    assert jitter_of(trigger, "F1", slot) == jitter_of(trigger, "F1", slot)
    assert jitter_of(ScheduleTrigger(every="1h"), "F1", slot) == timedelta(0)


JITTERY = """
name: Jittery
kind: scheduled
trigger: {type: schedule, every: 1h, jitter: 30m}
steps:
  - {type: post_message, channel: "#general", text: "tick"}
"""


async def test_a_jittered_slot_runs_at_its_delay_not_before(
    timed_bot: BotHarness, clock: FakeClock
) -> None:
    from flows.definition import ScheduleTrigger
    from flows.schedule_policies import jitter_of

    flow = await create_flow(timed_bot, JITTERY)
    slot = datetime(2099, 1, 5, 10, tzinfo=UTC)
    assert isinstance(flow.definition.trigger, ScheduleTrigger)
    delay = jitter_of(flow.definition.trigger, flow.id, slot)
    clock.current = slot + delay - timedelta(seconds=1)
    await schedules(timed_bot).tick(TEAM, flow.id)
    await asyncio.sleep(0.1)
    if delay >= timedelta(seconds=1):
        assert await runs_of(timed_bot, flow.id) == []
    clock.current = slot + delay
    await schedules(timed_bot).tick(TEAM, flow.id)
    [run] = await finished_run(timed_bot, flow.id)
    assert run.run_key == schedule_run_key(flow.id, slot)
