"""Scheduled flows after downtime: the misfire policy (skip / run_once), exactly once even
when two replicas start together, and the slot arithmetic behind it.

The bot is stopped and started again on a fake clock set far in the future (2099), so
APScheduler's real-time wake-ups never fire during a test: what happens here is what the
schedule service does when it starts.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from bot.app import Flowbot
from emulator.server import SlackEmulator
from flows.definition import ScheduleTrigger, parse_definition
from flows.records import FlowRecord, RunTrigger
from flows.scheduling import ScheduleService, schedule_run_key, slots_between
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    TEAM,
    at_least,
    create_flow,
    deps,
    eventually,
    finished_run,
    make_settings,
    runs_of,
    start_flowbot,
)

UTC = timezone.utc
START = datetime(2099, 1, 5, 9, 0, 30, tzinfo=UTC)

HOURLY = """
name: Hourly report
kind: scheduled
trigger: {type: schedule, cron: "0 * * * *", timezone: Europe/Paris, misfire: POLICY}
steps:
  - {type: post_message, channel: "#general", text: "report for {{ trigger.scheduled_for }}"}
"""


class Replicas:
    """Bot processes (in-process `bot.app.build`) on one database and one fake clock."""

    def __init__(self, emulator: SlackEmulator, mongo_uri: str, db_name: str) -> None:
        self.settings = make_settings(emulator, mongo_uri, db_name)
        self.clock = FakeClock(START)
        self.running: list[Flowbot] = []

    async def start(self) -> Flowbot:
        flowbot = await start_flowbot(self.settings, self.clock)
        self.running.append(flowbot)
        return flowbot

    async def stop(self, flowbot: Flowbot) -> None:
        self.running.remove(flowbot)
        await flowbot.stop()


@pytest.fixture
async def replicas(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> AsyncIterator[Replicas]:
    group = Replicas(emulator, mongo_uri, db_name)
    try:
        yield group
    finally:
        for flowbot in list(group.running):
            await group.stop(flowbot)


def schedules(flowbot: Flowbot) -> ScheduleService:
    return next(s for s in flowbot.services if isinstance(s, ScheduleService))


async def create(flowbot: Flowbot, policy: str) -> FlowRecord:
    return await create_flow(flowbot, HOURLY.replace("POLICY", policy))


def skip_notices(emulator: SlackEmulator) -> list[str]:
    return [m["text"] for m in emulator.messages_in(ALICE) if "skipped" in m["text"]]


async def downtime(replicas: Replicas, policy: str, off_for: timedelta) -> tuple[FlowRecord, Any]:
    """A flow made on the first bot, which then stops for `off_for`; two replicas start."""
    first = await replicas.start()
    flow = await create(first, policy)
    assert schedules(first).next_wakeup(flow.id) == datetime(2099, 1, 5, 10, tzinfo=UTC)
    await replicas.stop(first)
    replicas.clock.advance(off_for)
    second, third = await asyncio.gather(replicas.start(), replicas.start())
    return flow, (second, third)


async def test_skip_runs_nothing_records_the_skip_once_and_tells_the_owner(
    replicas: Replicas, emulator: SlackEmulator
) -> None:
    # Down from 09:00:30 to 12:05:30: the 10:00, 11:00 and 12:00 slots were missed.
    flow, (second, third) = await downtime(replicas, "skip", timedelta(hours=3, minutes=5))
    await asyncio.sleep(0.3)
    assert await runs_of(second, flow.id) == []
    state = await second.storage.db["schedules"].find_one({"_id": flow.id})
    assert state["skipped_total"] == 3 and len(state["skipped"]) == 1
    assert state["last_slot"] == datetime(2099, 1, 5, 12, tzinfo=UTC)
    record = state["skipped"][0]
    assert (record["first"], record["last"]) == (
        datetime(2099, 1, 5, 10, tzinfo=UTC),
        datetime(2099, 1, 5, 12, tzinfo=UTC),
    )
    # Told once (by whichever replica claimed it), by DM, in the flow's timezone.
    notices = await eventually(lambda: skip_notices(emulator))
    await asyncio.sleep(0.2)
    assert len(skip_notices(emulator)) == 1
    assert "Hourly report: 3 scheduled runs skipped" in notices[0]
    dm = emulator.messages_in(ALICE)[-1]
    blocks_text = str(dm["blocks"])
    assert "2099-01-05 11:00 (Europe/Paris)" in blocks_text  # 10:00 UTC
    assert "Next run: 2099-01-05 14:00 (Europe/Paris)" in blocks_text
    for replica in (second, third):
        assert schedules(replica).next_wakeup(flow.id) == datetime(2099, 1, 5, 13, tzinfo=UTC)
    # A further restart has nothing new to report.
    await replicas.stop(third)
    await replicas.start()
    await asyncio.sleep(0.2)
    assert len(skip_notices(emulator)) == 1 and await runs_of(second, flow.id) == []


async def test_run_once_starts_one_run_right_after_start(
    replicas: Replicas, emulator: SlackEmulator
) -> None:
    flow, (second, _third) = await downtime(replicas, "run_once", timedelta(hours=3, minutes=5))
    [run] = await finished_run(second, flow.id)
    await asyncio.sleep(0.3)
    assert len(await runs_of(second, flow.id)) == 1
    assert run.status == "succeeded", run.error
    assert run.run_key == schedule_run_key(flow.id, datetime(2099, 1, 5, 12, tzinfo=UTC))
    assert run.run_key == f"sched:{flow.id}:2099-01-05T12:00:00+00:00"
    assert run.trigger.type == "schedule" and run.started_by is None
    assert run.trigger.data["missed"] == 3 and run.trigger.data["catch_up"] is True
    assert run.trigger.data["scheduled_for"] == "2099-01-05T13:00:00+01:00"
    assert run.created_at == replicas.clock.now()  # at start, not at the next slot
    assert skip_notices(emulator) == []
    texts = [m["text"] for m in emulator.messages_in("#general")]
    assert texts == ["report for 2099-01-05T13:00:00+01:00"]


async def test_a_slot_moments_before_the_restart_still_runs(
    replicas: Replicas, emulator: SlackEmulator
) -> None:
    # Back 20 s after the 12:00 slot: 10:00 and 11:00 are missed (skipped), 12:00 runs.
    flow, (second, _third) = await downtime(
        replicas, "skip", timedelta(hours=2, minutes=59, seconds=50)
    )
    [run] = await eventually(lambda: runs_of(second, flow.id))
    assert run.run_key == f"sched:{flow.id}:2099-01-05T12:00:00+00:00"
    assert "missed" not in run.trigger.data
    state = await second.storage.db["schedules"].find_one({"_id": flow.id})
    assert state["skipped_total"] == 2
    notices = await eventually(lambda: skip_notices(emulator))
    assert "2 scheduled runs skipped" in notices[0]
    await asyncio.sleep(0.3)
    assert len(await runs_of(second, flow.id)) == 1


async def test_time_switched_off_or_before_an_edit_is_not_a_misfire(
    replicas: Replicas, emulator: SlackEmulator
) -> None:
    first = await replicas.start()
    flow = await create(first, "skip")
    await deps(first).catalog.set_enabled(TEAM, ALICE, flow.id, False)
    assert schedules(first).next_wakeup(flow.id) is None
    await replicas.stop(first)
    replicas.clock.advance(timedelta(hours=5, minutes=10))  # 14:10:30
    second = await replicas.start()
    assert schedules(second).next_wakeup(flow.id) is None
    await deps(second).catalog.set_enabled(TEAM, ALICE, flow.id, True)
    assert schedules(second).next_wakeup(flow.id) == datetime(2099, 1, 5, 15, tzinfo=UTC)
    # An edit moves the schedule: its slots start from the edit, not from the last run.
    replicas.clock.advance(timedelta(minutes=40))  # 14:50:30, nothing missed yet
    edited = parse_definition(
        HOURLY.replace("POLICY", "skip").replace('"0 * * * *"', '"*/20 * * * *"')
    )
    await deps(second).catalog.update_definition(TEAM, ALICE, flow.id, edited)
    assert schedules(second).next_wakeup(flow.id) == datetime(2099, 1, 5, 15, tzinfo=UTC)
    await replicas.stop(second)
    replicas.clock.advance(timedelta(hours=1))  # 15:50:30: 15:00, 15:20, 15:40 missed
    third = await replicas.start()
    state = await third.storage.db["schedules"].find_one({"_id": flow.id})
    assert state["skipped_total"] == 3 and state["version"] == 2
    notices = await eventually(lambda: skip_notices(emulator))
    assert len(notices) == 1 and "3 scheduled runs skipped" in notices[0]
    assert await runs_of(third, flow.id) == []


async def test_deleting_a_flow_forgets_its_schedule(replicas: Replicas) -> None:
    first = await replicas.start()
    flow = await create(first, "run_once")
    assert await first.storage.db["schedules"].count_documents({"_id": flow.id}) == 1
    await deps(first).catalog.delete(TEAM, ALICE, flow.id)
    assert schedules(first).next_wakeup(flow.id) is None
    assert await first.storage.db["schedules"].count_documents({"_id": flow.id}) == 0


# ------------------------------------------------------------------ slot arithmetic


def trigger(**fields: Any) -> ScheduleTrigger:
    return ScheduleTrigger.model_validate({"type": "schedule", **fields})


def test_slots_follow_the_timezone_and_daylight_saving() -> None:
    daily = trigger(cron="0 9 * * *", timezone="Europe/Paris")
    # 2099-03-29 is the day after the switch to summer time (CET → CEST) in Paris.
    window = slots_between(
        daily, datetime(2099, 3, 27, 12, tzinfo=UTC), datetime(2099, 3, 30, 12, tzinfo=UTC)
    )
    assert window.count == 3 and not window.capped
    assert window.first == datetime(2099, 3, 28, 8, tzinfo=UTC)  # 09:00 CET
    assert window.newest == datetime(2099, 3, 30, 7, tzinfo=UTC)  # 09:00 CEST
    assert window.before_newest == datetime(2099, 3, 29, 7, tzinfo=UTC)


def test_interval_slots_are_the_same_whenever_a_process_starts() -> None:
    every = trigger(every="15m")
    a = slots_between(
        every, datetime(2099, 1, 1, 10, 1, 7, tzinfo=UTC), datetime(2099, 1, 1, 11, tzinfo=UTC)
    )
    b = slots_between(
        every, datetime(2099, 1, 1, 10, 7, 59, tzinfo=UTC), datetime(2099, 1, 1, 11, tzinfo=UTC)
    )
    assert a == b
    assert (a.count, a.first, a.newest) == (
        4,
        datetime(2099, 1, 1, 10, 15, tzinfo=UTC),
        datetime(2099, 1, 1, 11, tzinfo=UTC),
    )
    assert slots_between(every, a.newest, a.newest).count == 0  # type: ignore[arg-type]


def test_a_long_downtime_is_counted_up_to_a_limit_and_its_newest_slots_found() -> None:
    every = trigger(every="1m")
    start = datetime(2099, 1, 1, tzinfo=UTC)
    window = slots_between(every, start, start + timedelta(days=30, seconds=30), limit=1000)
    assert window.capped and window.count == 1000
    assert window.first == start + timedelta(minutes=1)
    assert window.newest == start + timedelta(days=30)
    assert window.before_newest == start + timedelta(days=30, minutes=-1)
    sparse = trigger(cron="0 0 1 1 *")  # once a year
    window = slots_between(sparse, start, start + timedelta(days=365 * 3 + 10), limit=2)
    assert window.capped and window.newest == datetime(2102, 1, 1, tzinfo=UTC)
    assert window.before_newest == datetime(2101, 1, 1, tzinfo=UTC)


async def test_changes_made_through_another_process_are_followed(replicas: Replicas) -> None:
    watcher = await replicas.start()
    maker = await replicas.start()
    flow = await create(maker, "skip")
    # The watcher learns of the new flow at its periodic resync (called here directly).
    assert schedules(watcher).next_wakeup(flow.id) is None
    await schedules(watcher).resync()
    slot = datetime(2099, 1, 5, 10, tzinfo=UTC)
    assert schedules(watcher).next_wakeup(flow.id) == schedules(maker).next_wakeup(flow.id) == slot
    await deps(maker).catalog.set_enabled(TEAM, ALICE, flow.id, False)
    assert schedules(maker).next_wakeup(flow.id) is None
    await schedules(watcher).resync()
    assert schedules(watcher).next_wakeup(flow.id) is None


async def test_a_wake_up_never_fires_a_version_changed_through_another_process(
    replicas: Replicas,
) -> None:
    """A wake-up fires the flow armed without reading it again, unless its version is no
    longer the enabled one: edited, disabled or deleted elsewhere since it was armed."""
    watcher = await replicas.start()
    maker = await replicas.start()
    flow = await create(maker, "skip")
    await schedules(watcher).resync()
    edited = parse_definition(HOURLY.replace("POLICY", "skip").replace("report for", "v2"))
    await deps(maker).catalog.update_definition(TEAM, ALICE, flow.id, edited)
    replicas.clock.advance(timedelta(minutes=59, seconds=31))  # 10:00:01
    await schedules(watcher)._wake(TEAM, flow.id)
    [run] = await runs_of(watcher, flow.id)
    assert run.flow_version == 2
    await deps(maker).catalog.set_enabled(TEAM, ALICE, flow.id, False)
    replicas.clock.advance(timedelta(hours=1))
    await schedules(watcher)._wake(TEAM, flow.id)
    assert len(await runs_of(watcher, flow.id)) == 1
    assert schedules(watcher).next_wakeup(flow.id) is None


EVERY_2S = """
name: Pulse
kind: scheduled
trigger: {type: schedule, every: 2s, misfire: skip}
steps:
  - {type: post_message, channel: "#general", text: "pulse {{ trigger.slot }}"}
"""


async def test_short_intervals_run_the_newest_late_slot_and_skip_only_downtime(
    replicas: Replicas, emulator: SlackEmulator
) -> None:
    first = await replicas.start()
    flow = await create_flow(first, EVERY_2S)
    assert schedules(first).next_wakeup(flow.id) == datetime(2099, 1, 5, 9, 0, 32, tzinfo=UTC)
    await replicas.stop(first)

    # Back 9 s later (09:00:39): 32, 34 and 36 were superseded by 38, which runs; slots
    # less than the grace (60 s) late are not downtime: nothing skipped, nobody told.
    replicas.clock.advance(timedelta(seconds=9))
    second = await replicas.start()
    [run] = await eventually(lambda: runs_of(second, flow.id))
    assert run.run_key == f"sched:{flow.id}:2099-01-05T09:00:38+00:00"
    state = await second.storage.db["schedules"].find_one({"_id": flow.id})
    assert state["skipped_total"] == 0
    assert schedules(second).next_wakeup(flow.id) == datetime(2099, 1, 5, 9, 0, 40, tzinfo=UTC)
    await replicas.stop(second)

    # Back 3 minutes later (09:03:39): the 60 slots from 09:00:40 to 09:02:38 are more than
    # the grace late (downtime: skipped and told once), the newest (09:03:38) runs.
    replicas.clock.advance(timedelta(minutes=3))
    third = await replicas.start()
    runs = await eventually(lambda: at_least(runs_of(third, flow.id), 2))
    assert runs[-1].run_key == f"sched:{flow.id}:2099-01-05T09:03:38+00:00"
    state = await third.storage.db["schedules"].find_one({"_id": flow.id})
    assert state["skipped_total"] == 60
    assert (state["skipped"][0]["first"], state["skipped"][0]["last"]) == (
        datetime(2099, 1, 5, 9, 0, 40, tzinfo=UTC),
        datetime(2099, 1, 5, 9, 2, 38, tzinfo=UTC),
    )
    notices = await eventually(lambda: skip_notices(emulator))
    assert len(notices) == 1 and "Pulse: 60 scheduled runs skipped" in notices[0]


async def test_a_slot_another_replica_is_still_recording_is_not_reported_skipped(
    replicas: Replicas, emulator: SlackEmulator
) -> None:
    """A replica ran 09:00:32 but has not yet moved the state past it when another one,
    one interval later, ticks for 09:00:34: 09:00:32 is not a skip (and not run twice)."""
    first = await replicas.start()
    flow = await create_flow(first, EVERY_2S)
    slot = datetime(2099, 1, 5, 9, 0, 32, tzinfo=UTC)
    earlier = await deps(first).runner.start_run(
        flow,
        RunTrigger(type="schedule", data={"slot": slot.isoformat()}),
        run_key=schedule_run_key(flow.id, slot),
    )
    # Its run has ended (a run in progress would make `overlap: skip` skip 09:00:34).
    await deps(first).runner.wait_for(earlier.id)
    replicas.clock.advance(timedelta(seconds=4))  # 09:00:34.5
    await schedules(first).tick(TEAM, flow.id)
    runs = await eventually(lambda: at_least(runs_of(first, flow.id), 2))
    assert [r.run_key for r in runs] == [
        schedule_run_key(flow.id, slot),
        f"sched:{flow.id}:2099-01-05T09:00:34+00:00",
    ]
    state = await first.storage.db["schedules"].find_one({"_id": flow.id})
    assert state["skipped_total"] == 0 and skip_notices(emulator) == []
