"""Schedules: loading many scheduled flows at start, and firing lateness.

Load: scheduled flows are inserted through the flows repository, then
`ScheduleService.start` is timed until every flow's wake-up is armed: a first start with
500 flows (every schedule state is created) and a restart with 10,000 flows (their states
exist), then a `resync` of those 10,000. Baseline: reading the flow documents.

Lateness: 1,000 flows with `every` schedules fire once each within one minute. Intervals
are anchored at the epoch, so flows get intervals (at least the window long) whose next
slots fall on distinct seconds of the window, the flows spread evenly over them. Lateness
is the run's `started_at` minus its slot, from the run records. Baseline: a bare APScheduler
(bench/bare_scheduler.py, a child process running at the same time) firing 1,000 no-op
jobs at the same slots.
"""

from __future__ import annotations

import asyncio
import gc
import json
import math
import subprocess
import sys
import time
from collections.abc import Awaitable
from datetime import datetime, timezone

from bench.common import (
    ALICE,
    GENERAL,
    ROOT,
    TEAM,
    Env,
    Section,
    fresh_server,
    make_emulator,
    percentile,
    say,
    settings_for,
)
from bot.app import Flowbot, build
from emulator.server import SlackEmulator
from flows.catalog import FlowStore
from flows.definition import FlowDefinition, parse_definition
from flows.records import FlowRecord
from flows.scheduling import ScheduleService, ScheduleState

NAME = "schedules"
TITLE = "Schedules"

# Never due during the benchmark (1 January, midnight): loading only.
YEARLY = """\
name: Yearly
trigger: {type: schedule, cron: "0 0 1 1 *"}
steps:
  - {id: v, type: set_variable, name: x, value: 1}
"""
TICKING = f"""\
name: Ticking
trigger: {{type: schedule, every: 60s}}
steps:
  - {{id: post, type: post_message, channel: "{GENERAL}", text: "tick {{{{ run.id }}}}"}}
"""


def _flow(i: int, definition: FlowDefinition, prefix: str) -> FlowRecord:
    now = datetime.now(timezone.utc)
    return FlowRecord(
        id=f"F{prefix}{i:05d}",
        team_id=TEAM,
        definition=definition.model_copy(update={"name": f"{prefix} {i:05d}"}),
        creator=ALICE,
        created_at=now,
        updated_at=now,
        updated_by=ALICE,
    )


async def _insert(store: FlowStore, flows: list[FlowRecord]) -> float:
    """Through the repository, 100 at a time (setup, not a figure)."""
    start = time.perf_counter()
    for i in range(0, len(flows), 100):
        await asyncio.gather(*(store.insert(flow) for flow in flows[i : i + 100]))
    return time.perf_counter() - start


def _service(flowbot: Flowbot) -> ScheduleService:
    return next(s for s in flowbot.services if isinstance(s, ScheduleService))


async def _read(flowbot: Flowbot) -> None:
    """The baseline: read every scheduled flow's document, nothing else."""
    query = {"enabled": True, "definition.trigger.type": "schedule"}
    docs = [doc async for doc in flowbot.storage.db["flows"].find(query)]
    assert docs


async def _timed(work: Awaitable[None]) -> tuple[float, float]:
    """(seconds `work` took, longest the event loop was blocked meanwhile): while it is
    blocked, nothing else in the bot runs (wake-ups, Slack acknowledgements)."""
    longest = 0.0
    done = False

    async def watch() -> None:
        nonlocal longest
        last = time.perf_counter()
        while not done:
            await asyncio.sleep(0.001)
            now = time.perf_counter()
            longest = max(longest, now - last)
            last = now

    watcher = asyncio.create_task(watch())
    start = time.perf_counter()
    try:
        await work
    finally:
        elapsed = time.perf_counter() - start
        done = True
        await watcher
    return elapsed, longest


def _slots(now: float, t0: int, window: int) -> list[tuple[int, int]]:
    """(interval, slot): for each second of the window that some interval's next slot after
    `now` falls on (slots are multiples of the interval since the epoch), one interval of
    at least twice the window, so that each flow fires once, and not again before the end."""
    by_slot: dict[int, int] = {}
    for every in range(2 * window, window * 60):
        slot = (math.floor(now / every) + 1) * every
        if t0 <= slot < t0 + window:
            by_slot.setdefault(slot, every)
    return sorted((every, slot) for slot, every in by_slot.items())


async def _seed_states(flowbot: Flowbot, flows: list[FlowRecord], at: datetime) -> None:
    """The schedule states an earlier run of the bot leaves (as storage/schedules_repo.py
    stores them), written in one go: a restart, not a first start. Creating them one by one
    is what the first-start figure measures (and what makes it slow, see the README)."""
    docs = []
    for flow in flows:
        state = ScheduleState(
            flow_id=flow.id, team_id=flow.team_id, version=flow.version, last_slot=at
        )
        doc = state.model_dump(mode="python", exclude={"flow_id"})
        docs.append({"_id": flow.id, **doc})
    await flowbot.storage.db["schedules"].insert_many(docs)


async def _start_figures(
    env: Env, emulator: SlackEmulator, section: Section, count: int, restart: bool
) -> float:
    """Start (and resync) figures; returns the seconds per flow of insert + seed + start."""
    flowbot = build(settings_for(emulator, env, env.db_name(NAME)), env.mongo.uri)
    assert flowbot.deps.catalog is not None
    schedules = _service(flowbot)
    try:
        await flowbot.storage.ensure_indexes()
        definition = parse_definition(YEARLY)
        flows = [_flow(i, definition, "Yearly") for i in range(count)]
        setup = time.perf_counter()
        await _insert(flowbot.deps.catalog.store, flows)
        if restart:
            await _seed_states(flowbot, flows, datetime.now(timezone.utc))
        setup = time.perf_counter() - setup
        say(f"{count:,} scheduled flows inserted in {setup:.1f} s")
        label = f"read the {count:,} flow documents"
        read, _ = await _timed(_read(flowbot))
        started, _ = await _timed(schedules.start())
        armed = sum(schedules.next_wakeup(flow.id) is not None for flow in flows)
        what = "restart with" if restart else "first start with"
        section.add(f"{what} {count:,} scheduled flows", started, read, "s", label)
        if restart:
            read, read_stall = await _timed(_read(flowbot))
            resynced, stall = await _timed(schedules.resync())
            section.add(f"resync of {count:,} scheduled flows", resynced, read, "s", label)
            section.add(
                "longest event-loop stall in that resync",
                stall * 1000,
                read_stall * 1000,
                "ms",
                "longest stall while reading them",
            )
        jobs = len(schedules.scheduler.get_jobs())
        section.note(f"{what} {count:,} flows: {armed:,} armed ({jobs:,} APScheduler jobs).")
    finally:
        await flowbot.stop()
    return (setup + started) / count


async def _lateness(env: Env, emulator: SlackEmulator, section: Section, per_flow: float) -> None:
    count, window = env.size(1_000, 200), env.size(60, 20)
    flowbot = build(settings_for(emulator, env, env.db_name(NAME)), env.mongo.uri)
    assert flowbot.deps.catalog is not None
    # Insert, seed and restart must be over before the first slot: twice what the restart
    # figure took per flow, plus 3 s, and at least 10 s for a full run (a busy machine).
    lead = max(math.ceil(2 * per_flow * count + 3), env.size(10, 5))
    now = time.time()
    t0 = math.ceil(now) + lead
    pairs = _slots(now, t0, window)
    definitions = {
        every: parse_definition(TICKING.replace("60s", f"{every}s")) for every, _ in pairs
    }
    flows, slots = [], []
    for i in range(count):
        every, slot = pairs[i % len(pairs)]
        flows.append(_flow(i, definitions[every], "Tick"))
        slots.append(slot)
    baseline = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bench.bare_scheduler",
        cwd=ROOT,
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
    )
    bare = asyncio.ensure_future(baseline.communicate(json.dumps(slots).encode()))
    try:
        await flowbot.storage.ensure_indexes()
        inserted = await _insert(flowbot.deps.catalog.store, flows)
        await _seed_states(flowbot, flows, datetime.fromtimestamp(now, timezone.utc))
        seeded = time.time()
        await flowbot.start()
        # As `python -m bot` does once started (bot/__main__.py): what the start built is
        # kept out of the collector's passes. Without it, this process (bench, emulator and
        # the earlier parts' garbage) paid full collections of 60-300 ms inside the window.
        gc.freeze()
        ready = time.time()
        restarted = ready - seeded
        say(f"{count} flows inserted in {inserted:.1f} s, the bot restarted in {restarted:.1f} s")
        say(
            f"{count} flows over {len(set(slots))} slots armed {t0 - ready:.1f} s before"
            f" the first slot; waiting {window} s"
        )
        await asyncio.sleep(max(0.0, t0 + window - time.time()) + 3)
        assert flowbot.deps.runner is not None
        await flowbot.deps.runner.idle()
        # (lateness, seconds into the window) of every scheduled run
        runs: list[tuple[float, float]] = []
        early = 0  # runs of slots due before the bot was ready: they measure its start
        query = {"trigger.type": "schedule"}
        async for doc in flowbot.storage.db["runs"].find(query):
            due = datetime.fromisoformat(doc["trigger"]["data"]["slot"])
            if due.timestamp() < ready:
                early += 1
                continue
            runs.append(((doc["started_at"] - due).total_seconds(), due.timestamp() - t0))
        late = [lateness for lateness, _ in runs]
        worst = max(runs, default=(0.0, 0.0))
        # The service's periodic resync first runs one interval after start.
        resync_at = ready + _service(flowbot).resync_interval - t0
        output, _ = await bare
        bare_late: list[float] = json.loads(output or b"[]")
    finally:
        gc.unfreeze()
        if baseline.returncode is None:
            baseline.kill()
            await baseline.wait()
        await flowbot.stop()
    label = f"bare APScheduler, {len(bare_late):,} no-op jobs"
    for q in (50, 99):
        section.add(
            f"firing lateness p{q}, {count:,} flows in {window} s",
            percentile(late, q) * 1000,
            percentile(bare_late, q) * 1000,
            "ms",
            label,
        )
    per_second = count / len(pairs)
    if early:
        section.note(
            f"the bot was ready {ready - t0:.1f} s into the window: the {early} runs due"
            " before that are left out."
        )
    section.note(
        f"{len(late) + early:,}/{count:,} scheduled runs started (about {per_second:.0f} flows on"
        f" each of {len(pairs)} seconds of a {window} s window); the latest,"
        f" {worst[0]:.2f} s late, was due {worst[1]:.0f} s into the window, and the periodic"
        f" resync started {resync_at:.0f} s into it (baseline max"
        f" {max(bare_late, default=0) * 1000:.1f} ms); the bot ran in this process, the"
        " baseline scheduler in a child process at the same time."
    )


async def run(env: Env) -> Section:
    section = Section(NAME, TITLE)
    emulator = make_emulator()
    await emulator.start()
    try:
        # A first start creates every schedule state one by one, which the embedded
        # database makes quadratic (see the README): 500 flows keep it within the budget.
        await _start_figures(env, emulator, section, env.size(500, 200), restart=False)
        # Each part on its own server: 10,000 inserts leave the embedded one slow to write.
        async with fresh_server(env) as part:
            count = env.size(10_000, 1_000)
            per_flow = await _start_figures(part, emulator, section, count, restart=True)
        async with fresh_server(env) as part:
            await _lateness(part, emulator, section, per_flow)
    finally:
        await emulator.stop()
    return section
