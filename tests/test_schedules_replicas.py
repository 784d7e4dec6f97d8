"""A flow every 2 seconds, in real time, with two bot processes on one database: a
`python -m bot` subprocess and a bot built in this process (serving HTTP). Every slot
runs exactly once and on time, also while the in-process bot restarts (a rolling
deploy: the subprocess carries on alone), and nothing runs after `/flow off`.

Nothing is faked: the system clock, APScheduler's wake-ups, one embedded MongoDB, the
Slack emulator.
"""

from __future__ import annotations

import asyncio
import logging
import re
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest

from bot.app import Flowbot
from emulator.server import SlackEmulator
from flows.records import RunRecord
from flows.scheduling import ScheduleService, slot_key
from flows.triggers import METADATA_EVENT_TYPE
from tests.support import (
    ALICE,
    RestartableBot,
    bot_process,
    create_flow,
    eventually,
    runs_of,
)

EVERY = timedelta(seconds=2)
# A run starts this soon after its slot at the latest (a wake-up, two reads, an insert).
ON_TIME = timedelta(seconds=1.5)

HEARTBEAT = """
name: Heartbeat
kind: scheduled
trigger: {type: schedule, every: 2s, timezone: America/New_York, misfire: skip}
steps:
  - {type: post_message, channel: "#general", text: "beat {{ trigger.slot }}"}
"""

_STARTED = re.compile(r"scheduled run (\S+) for ")


def schedules(flowbot: Flowbot) -> ScheduleService:
    return next(s for s in flowbot.services if isinstance(s, ScheduleService))


def slot_of(run: RunRecord) -> datetime:
    assert run.run_key is not None and run.run_key.startswith("sched:")
    return datetime.fromisoformat(run.run_key.split(":", 2)[2])


async def watch(seconds: float, bot: RestartableBot, flow_id: str, armed: set[datetime]) -> None:
    """Wait, noting the wake-ups the in-process bot arms for the flow."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if bot.harness is not None:
            wakeup = schedules(bot.harness.flowbot).next_wakeup(flow_id)
            if wakeup is not None:
                armed.add(wakeup)
        await asyncio.sleep(0.05)


async def test_every_2s_with_two_processes_one_run_per_slot_on_time_until_turned_off(
    emulator: SlackEmulator,
    mongo_uri: str,
    db_name: str,
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.INFO, logger="flows.scheduling")
    local = RestartableBot(emulator, mongo_uri, db_name)
    await local.start()
    try:
        before = datetime.now(timezone.utc)
        flow = await create_flow(local.running, HEARTBEAT)
        armed: set[datetime] = set()
        # The subprocess finds the flow when it starts (and restores its schedule).
        async with bot_process(local.settings, tmp_path) as other:
            watched_from = datetime.now(timezone.utc)
            await watch(8, local, flow.id, armed)
            # A rolling restart of the in-process bot: the subprocess fires alone meanwhile.
            await local.stop()
            down_from = datetime.now(timezone.utc)
            await asyncio.sleep(5)
            down_until = datetime.now(timezone.utc)
            await local.start()
            back_at = datetime.now(timezone.utc)
            await watch(4, local, flow.id, armed)

            # Turned off through the in-process bot; the subprocess learns it at its next
            # wake-up (which re-reads the flow) and fires no more.
            off_asked = datetime.now(timezone.utc)
            assert (await local.running.driver.slash(ALICE, "off Heartbeat")).ok
            db = local.running.db
            await eventually(lambda: _disabled(db, flow.id))
            turned_off = datetime.now(timezone.utc)
            # Its catalog tells its scheduler right after saving (catalog.on_change).
            await eventually(lambda: schedules(local.running.flowbot).next_wakeup(flow.id) is None)
            await asyncio.sleep(2 * EVERY.total_seconds() + 1)

            async def all_finished() -> list[RunRecord] | None:
                found = await runs_of(local.running, flow.id)
                return found if all(r.finished for r in found) else None

            runs = await eventually(all_finished)
            state = await db["schedules"].find_one({"_id": flow.id})
        subprocess_log = other.log_text()
    finally:
        await local.stop()

    # Exactly one run per slot: consecutive 2 s slots from the first one after the flow
    # was made until it was turned off, one run key each.
    slots = sorted(slot_of(run) for run in runs)
    assert len({run.run_key for run in runs}) == len(runs)
    assert before < slots[0] <= before + EVERY + timedelta(seconds=0.5), slots[0]
    assert slots == [slots[0] + i * EVERY for i in range(len(slots))], [slot_key(s) for s in slots]
    # The slot being fired as it was turned off may or may not have run; none after.
    assert off_asked - 2 * EVERY < slots[-1] <= turned_off, (slots[-1], turned_off)
    assert len(slots) >= 8
    # On time, and all succeeded.
    for run in runs:
        lateness = run.created_at - slot_of(run)
        assert timedelta(0) <= lateness < ON_TIME, (slot_key(slot_of(run)), lateness)
        assert run.trigger.type == "schedule" and run.status == "succeeded", run.error
    # One message per slot, carrying its run's metadata.
    posted = emulator.messages_in("#general")
    assert sorted(m["text"] for m in posted) == [f"beat {slot_key(s)}" for s in slots]
    by_slot = {slot_key(slot_of(run)): run for run in runs}
    for message in posted:
        run = by_slot[message["text"].removeprefix("beat ")]
        assert message["metadata"] == {
            "event_type": METADATA_EVENT_TYPE,
            "event_payload": {"run_id": run.id, "flow_id": flow.id, "depth": 0},
        }
    # Each run was started by exactly one process, and the subprocess ran the slots of the
    # restart alone. The in-process bot was armed for every slot while it was up (and
    # watched).
    here = set(_STARTED.findall(caplog.text))
    there = set(_STARTED.findall(subprocess_log))
    assert not here & there and here | there == {run.id for run in runs}
    alone = [run for run in runs if down_from < slot_of(run) <= down_until - ON_TIME]
    assert alone and all(run.id in there for run in alone)
    up = [s for s in slots if watched_from < s < down_from or back_at < s < off_asked]
    assert len(up) >= 4
    assert set(up) <= armed, sorted(slot_key(s) for s in set(up) - armed)
    assert state is not None and state["skipped_total"] == 0 and state["active"] is False
    # No wake-up was dropped or late by APScheduler's account either.
    for text in (caplog.text, subprocess_log):
        assert "Traceback" not in text, text
        assert "maximum number of running instances" not in text, text
        assert "was missed by" not in text, text


async def _disabled(db: Any, flow_id: str) -> bool:
    doc = await db["flows"].find_one({"_id": flow_id})
    return bool(doc and not doc["enabled"])
