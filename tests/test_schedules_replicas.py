"""A scheduled flow fires on time, once per slot, with two bot processes on one database,
and stops when it is turned off.

Flows may not be scheduled more often than once a minute (`ScheduleTrigger` refuses
`every` under 1m), and watching real minutes would take minutes. So both processes share
an accelerated fake clock: schedule time runs 20 times faster than real time, one minute
slot every 3 real seconds, and the schedule service arms APScheduler's real-time wake-ups
after the real-time equivalent of each wait (`flows.scheduling.ScaledClock`). Everything
else is real: two `bot.app.build` instances (the first serving HTTP), one embedded
MongoDB, the Slack emulator. A subprocess `python -m bot` cannot share the fake clock, so
both replicas run in this process.
"""

from __future__ import annotations

import asyncio
import time
from datetime import datetime, timedelta, timezone

from bot.app import Flowbot, build
from bot.server import Server
from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from flows.definition import parse_definition
from flows.records import RunRecord
from flows.scheduling import ScheduleService, slot_key
from storage.runs_repo import from_doc
from tests.conftest import ALICE, SIGNING_SECRET, TEAM, make_settings

SPEED = 20.0  # schedule seconds per real second

EVERY_MINUTE = """
name: Heartbeat
kind: scheduled
trigger: {type: schedule, every: 1m, timezone: America/New_York, misfire: skip}
steps:
  - {type: post_message, channel: "#general", text: "beat {{ trigger.slot }}"}
"""


class AcceleratedClock:
    """A fake clock whose time runs `speed` times faster than real time."""

    def __init__(self, speed: float) -> None:
        self.speed = speed
        self._start = datetime.now(timezone.utc)
        self._real = time.monotonic()

    def now(self) -> datetime:
        elapsed = (time.monotonic() - self._real) * self.speed
        return self._start + timedelta(seconds=elapsed)


def schedules(flowbot: Flowbot) -> ScheduleService:
    return next(s for s in flowbot.services if isinstance(s, ScheduleService))


async def runs_of(flowbot: Flowbot, flow_id: str) -> list[RunRecord]:
    cursor = flowbot.storage.db["runs"].find({"flow_id": flow_id}).sort("created_at", 1)
    return [from_doc(doc) async for doc in cursor]


def slot_of(run: RunRecord) -> datetime:
    assert run.run_key is not None
    return datetime.fromisoformat(run.run_key.split(":", 2)[2])


async def test_two_replicas_fire_every_slot_once_on_time_until_turned_off(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> None:
    clock = AcceleratedClock(SPEED)
    settings = make_settings(emulator, mongo_uri, db_name)
    first = build(settings, mongo_uri, clock=clock)
    server = Server(first, host="127.0.0.1", port=0)
    await server.start()
    driver = SlackDriver(server.url + "/slack/events", SIGNING_SECRET, emulator)
    second: Flowbot | None = None
    try:
        assert first.deps.catalog is not None
        before = clock.now()
        flow = (await first.deps.catalog.create(TEAM, ALICE, parse_definition(EVERY_MINUTE))).flow
        second = build(settings, mongo_uri, clock=clock)
        await second.start()
        # Watch both processes for about 4.5 slots: each arms a wake-up for every slot.
        armed: dict[str, set[datetime]] = {"first": set(), "second": set()}
        deadline = time.monotonic() + 13.5
        while time.monotonic() < deadline:
            for name, flowbot in (("first", first), ("second", second)):
                wakeup = schedules(flowbot).next_wakeup(flow.id)
                if wakeup is not None:
                    armed[name].add(wakeup)
            await asyncio.sleep(0.1)

        runs = await _finished_runs(first, flow.id)
        slots = [slot_of(run) for run in runs]
        assert len(runs) >= 4, slots
        # One run per slot, consecutive minutes from the first one after the flow was made.
        assert before < slots[0] <= before + timedelta(minutes=1, seconds=20)
        assert slots == [slots[0] + timedelta(minutes=i) for i in range(len(slots))]
        assert set(slots) <= armed["first"] and set(slots) <= armed["second"]
        assert len({run.run_key for run in runs}) == len(runs)
        for run in runs:
            lateness = (run.created_at - slot_of(run)).total_seconds()
            assert 0 <= lateness < 60, (slot_key(slot_of(run)), lateness)  # < 3 s real
            assert run.trigger.type == "schedule" and run.status == "succeeded", run.error
        texts = [m["text"] for m in emulator.messages_in("#general")]
        assert [f"beat {slot_key(slot)}" for slot in slots] == texts[: len(slots)]
        # Both processes fired; whichever came second found the slot done (a newer
        # last_slot) or was refused by the unique run key ("was run already" in the log).
        state = await first.storage.db["schedules"].find_one({"_id": flow.id})
        assert state["skipped_total"] == 0

        # Turned off through the first process: neither fires any more.
        response = await driver.slash(ALICE, "off Heartbeat")
        assert response.ok
        await _until(lambda: _disabled(first, flow.id))
        # Its catalog tells its scheduler right after saving (catalog.on_change).
        await _until(lambda: _true(schedules(first).next_wakeup(flow.id) is None))
        count = len(await runs_of(first, flow.id))
        await asyncio.sleep(7)  # two more slots and a bit
        after = await runs_of(first, flow.id)
        assert len(after) <= count + 1  # at most the slot being fired as it was turned off
        assert all(slot_of(r) <= clock.now() - timedelta(minutes=2) for r in after)
        # The second process learnt it at its next wake-up (it re-reads the flow).
        assert schedules(second).next_wakeup(flow.id) is None
    finally:
        await driver.close()
        if second is not None:
            await second.stop()
        await server.stop()


async def _finished_runs(flowbot: Flowbot, flow_id: str) -> list[RunRecord]:
    """The runs so far, once each has finished (a slot may have just been fired)."""
    deadline = time.monotonic() + 10
    while True:
        runs = await runs_of(flowbot, flow_id)
        if all(run.finished for run in runs) or time.monotonic() > deadline:
            return runs
        await asyncio.sleep(0.05)


async def _disabled(flowbot: Flowbot, flow_id: str) -> bool:
    doc = await flowbot.storage.db["flows"].find_one({"_id": flow_id})
    return bool(doc and not doc["enabled"])


async def _true(value: bool) -> bool:
    return value


async def _until(check, timeout: float = 5.0) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not await check():
        assert time.monotonic() < deadline, "timed out"
        await asyncio.sleep(0.05)
