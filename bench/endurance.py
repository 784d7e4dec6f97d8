"""Endurance of the embedded database: does a bot that keeps running stay as fast?

30,000 runs of the three-step flow (a post, a condition, a post) go through one embedded
server (the section's own, never restarted), through the engine and its MongoDB store, 200
at a time, with posts to an in-process recording messenger (Slack is measured elsewhere:
this is the database's part). Figure: the last 1,000 runs' throughput against the first
1,000's (goal: within 10%). Then the hot queries (the waker's idle poll, a flow's history,
a run by id, a leased write, pending approvals) timed with 1,000, 10,000 and 100,000
finished runs stored (goal: flat). And the same run workload through motor and through
PyMongo's own `AsyncMongoClient` (motor is the default; this says what a switch gives).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from datetime import datetime, timedelta, timezone
from typing import Any

from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import AsyncMongoClient

from bench.common import ALICE, GENERAL, TEAM, Env, Section, percentile, say, three_step_flow
from flows.definition import parse_definition
from flows.ports import RandomIds, SystemClock
from flows.records import FlowRecord, RunRecord, RunTrigger
from flows.run_model import Lease
from flows.runner import Runner
from flows.steps import builtin_executors
from flows.testing.fakes import FixedDirectory, RecordingMessenger
from storage.approvals_repo import ApprovalsRepo
from storage.runs_repo import MongoRunStore, to_doc

NAME = "endurance"
TITLE = "Endurance of the embedded database"

FLOW = three_step_flow("Bench endurance")
BATCH = 200


def flow_record() -> FlowRecord:
    now = datetime.now(timezone.utc)
    return FlowRecord(
        id="F0ENDURANCE",
        team_id=TEAM,
        definition=parse_definition(FLOW),
        creator=ALICE,
        created_at=now,
        updated_at=now,
        updated_by=ALICE,
    )


class Engine:
    """The engine on a MongoDB store, posting to an in-process recording messenger."""

    def __init__(self, db: Any) -> None:
        self.store = MongoRunStore(db)
        folks = FixedDirectory(channels={GENERAL: [ALICE]})
        self.messenger = RecordingMessenger()
        executors = builtin_executors(self.messenger, folks)
        self.runner = Runner(self.store, executors, SystemClock(), RandomIds())

    async def run_batches(self, flow: FlowRecord, total: int) -> list[float]:
        """Runs `total` runs, `BATCH` at a time; the seconds each batch took."""
        trigger = RunTrigger(type="manual", user=ALICE)
        times: list[float] = []
        for _ in range(0, total, BATCH):
            start = time.perf_counter()
            await asyncio.gather(*(self.runner.start_run(flow, trigger) for _ in range(BATCH)))
            await self.runner.idle()
            times.append(time.perf_counter() - start)
            self.messenger.sent.clear()  # the log would grow with every run
        return times


async def endurance(env: Env, section: Section, client: AsyncIOMotorClient[Any]) -> None:
    total = env.size(30_000, 3_000)
    window = env.size(1_000, 400)
    engine = Engine(client[env.db_name(NAME)])
    await engine.store.ensure_indexes()
    say(f"{total} runs through one embedded server, {BATCH} at a time")
    times = await engine.run_batches(flow_record(), total)
    per = window // BATCH
    first = window / sum(times[:per])
    last = window / sum(times[-per:])
    section.add(
        f"endurance: last {window:,} runs' throughput (of {total:,} on one server)",
        last,
        first,
        "runs/s",
        f"the first {window:,} runs",
        higher_is_better=True,
    )
    section.note(
        f"{total:,} runs in {sum(times):.0f} s; batches of {BATCH}: fastest"
        f" {BATCH / min(times):.0f} runs/s, slowest {BATCH / max(times):.0f} runs/s"
    )
    await engine.runner.stop()


async def timed(call: Callable[[], Awaitable[object]], repeat: int) -> float:
    samples = []
    for _ in range(repeat):
        start = time.perf_counter()
        await call()
        samples.append(time.perf_counter() - start)
    return percentile(samples, 50) * 1000


SMALL = """\
name: Old
steps:
  - {id: hello, type: post_message, channel: "#general", text: "hello"}
"""
FLOWS = 100  # the stored history is spread over this many flows
# A run every 20 s, the newest now, older ones added as the history grows: 100,000 runs
# go back 23 days (within the default 30 days' retention), one flow's every 33 minutes.
PACE = timedelta(seconds=20)


async def fill(db: Any, upto: int, stored: int) -> int:
    """Finished runs stored up to `upto`, over `FLOWS` flows (inserted in bulk); run `n`
    was created `n` times `PACE` ago."""
    now = datetime.now(timezone.utc)
    template = to_doc(
        RunRecord(
            id="X",
            team_id=TEAM,
            flow_id="F0OLD",
            flow_name="Old",
            flow_version=1,
            definition=parse_definition(SMALL),
            status="succeeded",
            started_by=ALICE,
            trigger=RunTrigger(type="manual", user=ALICE),
            created_at=now,
            finished_at=now,
        )
    )
    while stored < upto:
        chunk = min(5_000, upto - stored)
        docs = [
            {
                **template,
                "_id": f"old{n}",
                "flow_id": f"F0OLD{n % FLOWS}",
                "created_at": now - n * PACE,
                "finished_at": now - n * PACE,
            }
            for n in range(stored, stored + chunk)
        ]
        await db["runs"].insert_many(docs, ordered=False)
        stored += chunk
    return stored


async def query_times(env: Env, section: Section, client: AsyncIOMotorClient[Any]) -> None:
    db = client[env.db_name("queries")]
    store, approvals = MongoRunStore(db), ApprovalsRepo(db)
    await store.ensure_indexes()
    await approvals.ensure_indexes()
    engine = Engine(db)
    # A live run among the history: leased (written to) while the history piles up.
    live = await engine.runner.start_run(flow_record(), RunTrigger(type="manual", user=ALICE))
    await engine.runner.idle()
    lease = Lease("bench", datetime.now(timezone.utc) + timedelta(hours=1))
    await db["runs"].update_one(
        {"_id": live.id}, {"$set": {"status": "running", "lease_owner": "bench"}}
    )
    sizes = [1_000, 10_000, 100_000] if not env.quick else [1_000, 3_000, 10_000]
    long_ago = datetime.now(timezone.utc) - timedelta(days=1)  # nothing is due
    calls: dict[str, Callable[[], Awaitable[object]]] = {
        "waker poll": lambda: store.claim_due(long_ago, lease, 50),
        "get": lambda: store.get(live.id),
        "leased write": lambda: store.renew([live.id], lease),
        "pending approvals": lambda: approvals.pending_for(TEAM, ALICE),
    }
    stored = 0
    hot: dict[int, float] = {}
    history: dict[int, float] = {}
    for size in sizes:
        stored = await fill(db, size, stored)
        results = {name: await timed(call, 30) for name, call in calls.items()}
        hot[size] = sum(results.values())
        history[size] = await timed(lambda: store.history(TEAM, "F0OLD0", 20), 10)
        section.note(
            f"queries at {size:,} stored runs (median ms): "
            + ", ".join(f"{k} {v:.2f}" for k, v in results.items())
            + f", a flow's history (last 20 of its {size // FLOWS:,}) {history[size]:.1f}"
        )
    small, large = sizes[0], sizes[-1]
    section.add(
        f"endurance: hot queries at {large:,} stored runs (sum of 4 medians)",
        hot[large],
        hot[small],
        "ms",
        f"the same at {small:,} stored runs",
    )
    section.add(
        f"endurance: a flow's history at {large:,} stored runs ({FLOWS} flows)",
        history[large],
        history[small],
        "ms",
        f"the same at {small:,} stored runs",
    )
    await engine.runner.stop()


async def drivers(env: Env, section: Section) -> None:
    """The same run workload through motor and through PyMongo's AsyncMongoClient."""
    total = env.size(800, 400)
    flow = flow_record()
    rates: dict[str, float] = {}
    for rounds in range(1):  # one round each, back to back (the section's time is counted)
        for name in ("motor", "pymongo"):
            client: Any
            if name == "motor":
                client = AsyncIOMotorClient(env.mongo.uri, tz_aware=True)
            else:
                client = AsyncMongoClient(env.mongo.uri, tz_aware=True)
            engine = Engine(client[env.db_name(f"{name}{rounds}")])
            await engine.store.ensure_indexes()
            times = await engine.run_batches(flow, total)
            await engine.runner.stop()
            rate = total / sum(times)
            rates[name] = max(rates.get(name, 0.0), rate)
            result = client.close()
            if asyncio.iscoroutine(result):
                await result
    section.add(
        "endurance: 3-step runs through PyMongo's AsyncMongoClient",
        rates["pymongo"],
        rates["motor"],
        "runs/s",
        "the same through motor (the default)",
        higher_is_better=True,
    )


async def run(env: Env) -> Section:
    section = Section(NAME, TITLE)
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(env.mongo.uri, tz_aware=True)
    try:
        await endurance(env, section, client)
        await query_times(env, section, client)
    finally:
        client.close()
    await drivers(env, section)
    return section
