"""Every hot query is in a shape the database serves from an index (issue 20).

The stores run a day's work (runs leased, parked, woken, claimed, finished; approvals and
asks decided; schedules activated; history and pending lists read) through a client that
records each command it sends. Then every recorded read is `explain`ed on the same server,
and every recorded write is checked for the shape that rides an index. SecantusDB serves
no index to a filter with a top-level `$or`/`$and`, and re-issues a `findAndModify` as
`{_id, $and: [query]}`, so both would scan the collection on every call.
"""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Iterator, Mapping
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo import monitoring

from flows.approval_model import ApprovalMessage, ApprovalResponse, Decision
from flows.ask_model import AskMessage, AskRecord
from flows.records import StepResult, StepStatus
from flows.run_model import Lease
from storage.alerts_repo import MongoFailureStreaks
from storage.approvals_repo import ApprovalsRepo
from storage.asks_repo import AsksRepo
from storage.embedded import EmbeddedMongo
from storage.runs_repo import MongoRunStore, to_doc
from storage.schedules_repo import MongoScheduleStore
from storage.trigger_log_repo import MongoTriggerLog
from tests.builders import ALICE, BOB, T0, TEAM, approval_record, run_record

LEASE = Lease("me", T0 + timedelta(hours=1))
LATER = T0 + timedelta(minutes=5)
TEN_MINUTES = timedelta(minutes=10)
# Reads and writes the bot makes on its hot paths (runs, clicks, the waker, schedules).
HOT = {"find", "update", "findAndModify", "delete", "aggregate", "count"}


class Recorder(monitoring.CommandListener):
    def __init__(self) -> None:
        self.commands: list[tuple[str, dict[str, Any]]] = []

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in HOT:
            self.commands.append((event.command_name, dict(event.command)))

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


@pytest.fixture
def recorder() -> Recorder:
    return Recorder()


@pytest.fixture
async def db(
    mongo: EmbeddedMongo, db_name: str, recorder: Recorder
) -> AsyncIterator[AsyncIOMotorDatabase[dict[str, Any]]]:
    uri = os.environ.get("FLOWBOT_TEST_MONGODB_URI") or mongo.uri
    client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(
        uri, tz_aware=True, event_listeners=[recorder]
    )
    yield client[db_name]
    await client.drop_database(db_name)
    client.close()


def step(step_id: str, status: StepStatus = "succeeded") -> StepResult:
    return StepResult(step_id=step_id, type="delay", status=status, started_at=T0, finished_at=T0)


async def a_day_of_work(db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
    runs, approvals = MongoRunStore(db), ApprovalsRepo(db)
    asks, schedules = AsksRepo(db), MongoScheduleStore(db)
    for repo in (runs, approvals, asks, schedules):
        await repo.ensure_indexes()
    # Some finished runs, so a scan would have something to scan.
    old = [to_doc(run_record(run_id=f"old{n}", status="succeeded")) for n in range(50)]
    await db["runs"].insert_many(old)
    for n in range(3):
        await runs.insert(run_record(run_id=f"R{n}"), LEASE)
        assert await runs.record_step(f"R{n}", LEASE, step("one"), {})
    assert await runs.park("R0", LEASE, step("pause", "waiting"), T0, "delay", {})
    assert await runs.park("R1", LEASE, step("ask", "waiting"), None, "approval", {})
    assert len(await runs.claim_due(LATER, LEASE, 10)) == 1
    assert await runs.claim_waiting("R1", "ask", {"outcome": "approved"}, LEASE) is not None
    assert await runs.finish("R1", LEASE, "succeeded", LATER, None, None, None, {})
    await runs.renew(["R0", "R2"], LEASE)
    assert await runs.end_cancelled("R2", LEASE, LATER, None, None, {}) is None
    await runs.history(TEAM, "F1", 20)
    await runs.history(TEAM, "F1", 20, started_by=ALICE)
    await runs.in_progress_of(["F1", "F2"])
    await runs.get("R1")

    await approvals.create(approval_record("A1", approvers=[BOB]))
    await approvals.set_messages("A1", [ApprovalMessage(channel="D1", ts="1.0", approver=BOB)])
    await approvals.pending_for(TEAM, BOB)
    await approvals.pending_page(TEAM, BOB, 1)  # a full page: counted too
    await approvals.pending_of_run("R1")
    decision = Decision("approved", "Approve", BOB, None, LATER)
    response = ApprovalResponse(user=BOB, response="Approve", at=LATER)
    assert await approvals.add_response("A1", 0, response, decision) is not None
    await approvals.mark_resumed("A1")
    await approvals.create(approval_record("A2", run_id="R2", approvers=[BOB]))
    await approvals.expire("A2", LATER)
    await approvals.unresumed()

    ask = AskRecord(id="Q1", team_id=TEAM, run_id="R0", step_id="q", title="Why?",
                    people=[BOB], created_at=T0)  # fmt: skip
    await asks.create(ask)
    await asks.set_messages("Q1", [AskMessage(channel="D1", ts="1.0", person=BOB)])
    await asks.pending_for(TEAM, BOB)
    await asks.pending_page(TEAM, BOB, 10)
    assert await asks.answer("Q1", BOB, {"why": "because"}, LATER) is not None

    trigger_log = MongoTriggerLog(db)
    await trigger_log.ensure_indexes()
    await trigger_log.latest("F1", 5)  # `/flow why`

    await schedules.activate(TEAM, "F1", 1, T0)
    await schedules.activate(TEAM, "F1", 1, T0)  # a restart: active already
    await schedules.activate(TEAM, "F1", 2, T0)  # a new version
    await schedules.advance("F1", LATER)

    # Successes settle failure streaks in batches: one read (usually empty), a reset each.
    streaks = MongoFailureStreaks(db)
    await streaks.ensure_indexes()
    await db["failure_streaks"].insert_one({"_id": "F1", "team_id": TEAM, "count": 2})
    found = await streaks.streaks(["F1", "F2", "F3"])
    assert await streaks.reset("F1", found["F1"])


def plan_stages(plan: Mapping[str, Any]) -> Iterator[str]:
    yield str(plan.get("stage"))
    for key in ("inputStage", "queryPlan"):
        if isinstance(plan.get(key), Mapping):
            yield from plan_stages(plan[key])
    for child in plan.get("inputStages") or []:
        yield from plan_stages(child)


async def stages_of(db: AsyncIOMotorDatabase[dict[str, Any]], command: dict[str, Any]) -> list[str]:
    find = {k: command[k] for k in ("find", "filter", "sort") if k in command}
    explained = await db.command("explain", find)
    return list(plan_stages(explained["queryPlanner"]["winningPlan"]))


def top_level_operators(query: Mapping[str, Any]) -> list[str]:
    return [key for key in query if key.startswith("$")]


def rides_an_id(query: Mapping[str, Any]) -> bool:
    # The write path serves `{_id: value, ...}` by the `_id` (the rest is checked on it).
    value = query.get("_id")
    return value is not None and (not isinstance(value, Mapping) or "$in" in value)


async def test_every_hot_query_is_served_by_an_index(
    db: AsyncIOMotorDatabase[dict[str, Any]], recorder: Recorder
) -> None:
    await a_day_of_work(db)
    commands = [c for c in recorder.commands if c[1].get("$db") == db.name]
    names = {name for name, _ in commands}
    assert "findAndModify" not in names
    assert {"find", "update"} <= names
    scans: list[str] = []
    for name, command in commands:
        if name == "find":
            query = command.get("filter") or {}
            assert query, f"an unfiltered read: {command}"
            assert not top_level_operators(query), command
            if "COLLSCAN" in await stages_of(db, command):
                scans.append(f"{command['find']}: {query}")
        elif name == "aggregate":
            # A count (`count_documents`): its leading `$match` is served like a find.
            match = command["pipeline"][0].get("$match") if command["pipeline"] else None
            assert match, f"an unfiltered aggregate: {command}"
            assert not top_level_operators(match), command
            probe = {"find": command["aggregate"], "filter": match}
            if "COLLSCAN" in await stages_of(db, probe):
                scans.append(f"{command['aggregate']} (aggregate): {match}")
        elif name == "update":
            for update in command["updates"]:
                assert not top_level_operators(update["q"]), update
                if not rides_an_id(update["q"]):
                    probe = {"find": command["update"], "filter": update["q"]}
                    if "COLLSCAN" in await stages_of(db, probe):
                        scans.append(f"{command['update']} (write): {update['q']}")
    assert scans == []


async def docs_examined(db: AsyncIOMotorDatabase[dict[str, Any]], command: dict[str, Any]) -> int:
    find = {k: command[k] for k in ("find", "filter", "sort", "limit") if k in command}
    explained = await db.command("explain", find, verbosity="executionStats")
    return int(explained["executionStats"]["totalDocsExamined"])


async def test_a_flows_history_reads_a_few_windows_not_all_its_runs(
    db: AsyncIOMotorDatabase[dict[str, Any]], recorder: Recorder
) -> None:
    runs = MongoRunStore(db)
    await runs.ensure_indexes()
    # 400 runs of the flow, one every 10 minutes back from now, and 400 of another.
    now = datetime.now(timezone.utc)
    old = [
        to_doc(run_record(run_id=f"old{n}", status="succeeded", created_at=now - n * TEN_MINUTES))
        for n in range(400)
    ]
    other = [{**doc, "_id": f"other{n}", "flow_id": "F2"} for n, doc in enumerate(old)]
    await db["runs"].insert_many([*old, *other])
    recorder.commands.clear()
    history = await runs.history(TEAM, "F1", 20)
    assert [r.id for r in history] == [f"old{n}" for n in range(20)]
    finds = [c for name, c in recorder.commands if name == "find"]
    assert 1 < len(finds) <= 3
    # The embedded server reads every run in a window (explained without the limit),
    # MongoDB at most the limit: either way, a few windows' worth, not the flow's 400.
    assert sum([await docs_examined(db, find) for find in finds]) <= 60
    for find in finds:
        stages = await stages_of(db, find)
        assert "COLLSCAN" not in stages
        if os.environ.get("FLOWBOT_TEST_MONGODB_URI"):
            assert "SORT" not in stages  # MongoDB sorts by walking the `history` index


async def test_the_embedded_uri_turns_retryable_writes_off_and_journals() -> None:
    uri = EmbeddedMongo(":memory:", port=1).uri
    assert "retryWrites=false" in uri and "journal=true" in uri


async def test_the_wakers_poll_bounds_its_range_on_both_sides(
    db: AsyncIOMotorDatabase[dict[str, Any]], recorder: Recorder
) -> None:
    """SecantusDB reads every entry of an index range up to its end before filtering, and
    runs waiting for people (no wake_at: null) sort before every date: a poll bounded above
    only would read all of them every half second (24 ms for 1,000 waiting runs)."""
    runs = MongoRunStore(db)
    await runs.ensure_indexes()
    await runs.insert(run_record(run_id="R1"), LEASE)
    assert await runs.park("R1", LEASE, step("ask", "waiting"), None, "approval", {})
    recorder.commands.clear()
    assert await runs.claim_due(LATER, LEASE, 10) == []
    [query] = [
        command["filter"]
        for name, command in recorder.commands
        if name == "find" and command["filter"].get("status") == "waiting"
    ]
    assert set(query["wake_at"]) == {"$gte", "$lte"}
