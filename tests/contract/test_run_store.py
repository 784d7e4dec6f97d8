"""`flows.run_model.RunStore`: leases, parking, claims, cancelling, history."""

from __future__ import annotations

from datetime import date, datetime, timedelta, timezone

import pytest

from flows.records import MessageRef, StepResult
from flows.run_model import TIMER, CancelRequest, DuplicateRun, Lease, RunStore
from tests.builders import ALICE, BOB, OTHER_TEAM, T0, flow_record, run_record

MINE = Lease("me", T0 + timedelta(seconds=30))
THEIRS = Lease("them", T0 + timedelta(seconds=30))
LATER = T0 + timedelta(minutes=5)


def done(step_id: str, **output: object) -> StepResult:
    return StepResult(
        step_id=step_id,
        type="post_message",
        status="succeeded",
        output=dict(output),
        started_at=T0,
        finished_at=T0,
    )


def waiting(step_id: str) -> StepResult:
    return StepResult(step_id=step_id, type="delay", status="waiting", started_at=T0)


def cancel_request(at: object = T0) -> CancelRequest:
    return CancelRequest(reason="the flow was deleted", by=ALICE, at=at, words="deleted by Alice")  # type: ignore[arg-type]


async def parked(runs: RunStore, run_id: str = "R1", wake_at: object = T0, **kw: object) -> None:
    await runs.insert(run_record(run_id=run_id, **kw), MINE)  # type: ignore[arg-type]
    assert await runs.park(run_id, MINE, waiting("pause"), wake_at, "delay", {})  # type: ignore[arg-type]


async def test_a_run_reads_back_as_written(runs: RunStore) -> None:
    run = run_record(inputs={"amount": 40, "day": date(2026, 11, 3), "tags": ("a", "b")})
    await runs.insert(run, None)
    stored = await runs.get("R1")
    assert stored is not None
    assert stored.status == "queued"
    # Values come back as plain data: a date as its ISO text, a tuple as a list.
    assert stored.inputs == {"amount": 40, "day": "2026-11-03", "tags": ["a", "b"]}
    assert stored.model_dump(exclude={"inputs"}) == run.model_dump(exclude={"inputs"})
    assert await runs.get("nope") is None


async def test_inserting_with_a_lease_makes_the_run_running(runs: RunStore) -> None:
    await runs.insert(run_record(), MINE)
    stored = await runs.get("R1")
    assert stored is not None and stored.status == "running"


async def test_one_run_per_run_key(runs: RunStore) -> None:
    await runs.insert(run_record(run_id="R1", run_key="sched:F1:slot"), None)
    with pytest.raises(DuplicateRun):
        await runs.insert(run_record(run_id="R2", run_key="sched:F1:slot"), None)
    # Runs without a key never collide.
    await runs.insert(run_record(run_id="R3"), None)
    await runs.insert(run_record(run_id="R4"), None)
    assert await runs.get("R2") is None


async def test_record_step_needs_the_lease(runs: RunStore) -> None:
    await runs.insert(run_record(), MINE)
    assert not await runs.record_step("R1", THEIRS, done("hello"), {})
    assert await runs.record_step("R1", MINE, done("hello", ts="1.2"), {"vars": {"topic": "sync"}})
    stored = await runs.get("R1")
    assert stored is not None
    assert stored.steps["hello"].output == {"ts": "1.2"}
    assert stored.vars == {"topic": "sync"}
    assert not await runs.record_step("nope", MINE, done("hello"), {})


async def test_step_ids_with_dots_are_kept(runs: RunStore) -> None:
    await runs.insert(run_record(), MINE)
    assert await runs.record_step("R1", MINE, done("route.then1"), {})
    stored = await runs.get("R1")
    assert stored is not None and list(stored.steps) == ["route.then1"]


async def test_parking_drops_the_lease(runs: RunStore) -> None:
    await parked(runs, wake_at=LATER)
    stored = await runs.get("R1")
    assert stored is not None
    assert (stored.status, stored.wake_at, stored.waiting_for) == ("waiting", LATER, "delay")
    assert stored.steps["pause"].status == "waiting"
    # Parked: nobody drives it, so the old lease writes nothing.
    assert not await runs.record_step("R1", MINE, done("two"), {})


async def test_finish_records_the_end_and_the_failing_step(runs: RunStore) -> None:
    await runs.insert(run_record(), MINE)
    failed = StepResult(step_id="hello", type="post_message", status="failed", error="boom")
    notify = MessageRef(channel="C1", ts="9.9").model_dump()
    assert not await runs.finish("R1", THEIRS, "failed", LATER, "x", "hello", failed, {})
    assert await runs.finish(
        "R1",
        MINE,
        "failed",
        LATER,
        "step hello: boom",
        "hello",
        failed,
        {"notify_message": notify},
    )
    stored = await runs.get("R1")
    assert stored is not None
    assert stored.status == "failed" and stored.finished_at == LATER
    assert (stored.error, stored.error_step) == ("step hello: boom", "hello")
    assert stored.steps["hello"].error == "boom"
    assert stored.notify_message == MessageRef(channel="C1", ts="9.9")
    assert not await runs.record_step("R1", MINE, done("after"), {})


async def test_record_notify_remembers_the_message(runs: RunStore) -> None:
    await runs.insert(run_record(), None)
    await runs.record_notify("R1", MessageRef(channel="C1", ts="1.1"))
    stored = await runs.get("R1")
    assert stored is not None and stored.notify_message == MessageRef(channel="C1", ts="1.1")


async def test_claim_due_takes_queued_due_and_abandoned_runs(runs: RunStore) -> None:
    await runs.insert(run_record(run_id="queued"), None)
    await parked(runs, "due", wake_at=T0)
    await parked(runs, "not_yet", wake_at=LATER)
    await runs.insert(run_record(run_id="abandoned"), Lease("dead", T0 - timedelta(seconds=1)))
    await runs.insert(run_record(run_id="alive"), Lease("other", LATER))
    await runs.insert(run_record(run_id="finished"), MINE)
    await runs.finish("finished", MINE, "succeeded", T0, None, None, None, {})

    claims = await runs.claim_due(T0, MINE, limit=20)
    by_id = {claim.run.id: claim for claim in claims}
    assert sorted(by_id) == ["abandoned", "due", "queued"]
    assert by_id["due"].resume == ("pause", dict(TIMER))
    assert by_id["queued"].resume is None and by_id["abandoned"].resume is None
    assert all(claim.run.status == "running" and claim.cancel is None for claim in claims)
    # Claimed under our lease now: a second pass finds nothing, and our writes go through.
    assert await runs.claim_due(T0, THEIRS, limit=20) == []
    assert await runs.record_step("due", MINE, done("pause"), {})


async def test_claim_due_honours_the_limit(runs: RunStore) -> None:
    for n in range(3):
        await runs.insert(run_record(run_id=f"R{n}"), None)
    assert len(await runs.claim_due(T0, MINE, limit=2)) == 2
    assert len(await runs.claim_due(T0, MINE, limit=2)) == 1


async def test_claim_waiting_wakes_the_waiting_step_once(runs: RunStore) -> None:
    await parked(runs, wake_at=None)
    assert await runs.claim_waiting("R1", "other_step", {"outcome": "approved"}, MINE) is None
    claim = await runs.claim_waiting("R1", "pause", {"outcome": "approved"}, MINE)
    assert claim is not None
    assert claim.resume == ("pause", {"outcome": "approved"})
    assert claim.run.status == "running"
    assert await runs.claim_waiting("R1", "pause", {"outcome": "again"}, THEIRS) is None


async def test_a_requeued_wake_up_is_replayed_by_the_next_claim(runs: RunStore) -> None:
    await parked(runs, wake_at=None)
    assert await runs.claim_waiting("R1", "pause", {"outcome": "approved"}, MINE)
    await runs.requeue("R1", "someone else")  # not the owner: no-op
    stored = await runs.get("R1")
    assert stored is not None and stored.status == "running"
    await runs.requeue("R1", MINE.owner)
    stored = await runs.get("R1")
    assert stored is not None and stored.status == "queued"
    [claim] = await runs.claim_due(T0, THEIRS, limit=20)
    assert claim.resume == ("pause", {"outcome": "approved"})


async def test_recording_the_step_consumes_the_wake_up(runs: RunStore) -> None:
    await parked(runs, wake_at=None)
    assert await runs.claim_waiting("R1", "pause", {"outcome": "approved"}, MINE)
    assert await runs.record_step("R1", MINE, done("pause"), {})
    await runs.requeue("R1", MINE.owner)
    [claim] = await runs.claim_due(T0, THEIRS, limit=20)
    assert claim.resume is None


async def test_renew_keeps_a_live_run_from_being_claimed(runs: RunStore) -> None:
    await runs.insert(run_record(), MINE)
    await runs.renew(["R1"], Lease("me", LATER + timedelta(minutes=1)))
    assert await runs.claim_due(LATER, THEIRS, limit=20) == []
    await runs.renew([], MINE)  # nothing to renew: fine


async def test_history_is_newest_first_per_flow_and_starter(runs: RunStore) -> None:
    other_flow = flow_record(flow_id="F2", name="Other")
    for n, starter in enumerate([ALICE, BOB, ALICE]):
        created = T0 + timedelta(minutes=n)
        await runs.insert(run_record(run_id=f"R{n}", started_by=starter, created_at=created), None)
    await runs.insert(run_record(other_flow, run_id="elsewhere"), None)
    assert [r.id for r in await runs.history("T0TEAM", "F1", 10)] == ["R2", "R1", "R0"]
    assert [r.id for r in await runs.history("T0TEAM", "F1", 2)] == ["R2", "R1"]
    assert [r.id for r in await runs.history("T0TEAM", "F1", 10, started_by=ALICE)] == [
        "R2",
        "R0",
    ]
    assert await runs.history(OTHER_TEAM, "F1", 10) == []


async def test_history_is_the_same_however_far_apart_the_runs_are(runs: RunStore) -> None:
    # Ages around the real clock (the MongoDB store reads a flow's history in windows of
    # `created_at` going back from it): ahead of it, minutes, hours, days, years ago.
    now = datetime.now(timezone.utc)
    hours = [-24, 0, 0.98, 3, 48, 480, 2400, 36000]
    ages = [timedelta(hours=h) for h in hours]
    for n, age in enumerate(ages):
        for m in range(3):  # 3 runs at each age, Alice's and Bob's
            created = now - age - timedelta(seconds=m)
            starter = ALICE if m != 1 else BOB
            run = run_record(run_id=f"R{n}.{m}", started_by=starter, created_at=created)
            await runs.insert(run, None)
    await runs.insert(run_record(flow_record(flow_id="F2", name="Other"), run_id="x"), None)
    newest_first = [f"R{n}.{m}" for n in range(len(ages)) for m in range(3)]
    for limit in (1, 2, 3, 4, 7, 10, 20, 23, 24, 25, 0):
        got = [r.id for r in await runs.history("T0TEAM", "F1", limit)]
        assert got == newest_first[: limit or None], limit
    alices = [run_id for run_id in newest_first if not run_id.endswith(".1")]
    for limit in (5, 15, 16, 17):
        got = [r.id for r in await runs.history("T0TEAM", "F1", limit, started_by=ALICE)]
        assert got == alices[:limit], limit
    assert await runs.history("T0TEAM", "F3", 20) == []


async def test_cancelling_ends_idle_runs_and_flags_driven_ones(runs: RunStore) -> None:
    await runs.insert(run_record(run_id="queued"), None)
    await parked(runs, "waiting", wake_at=LATER)
    await runs.insert(run_record(run_id="abandoned"), Lease("dead", T0 - timedelta(seconds=1)))
    await runs.insert(run_record(run_id="driven"), MINE)
    await runs.insert(run_record(run_id="finished"), MINE)
    await runs.finish("finished", MINE, "succeeded", T0, None, None, None, {})
    await runs.insert(run_record(flow_record(flow_id="F2", name="Other"), run_id="other"), None)

    result = await runs.cancel_flow_runs("T0TEAM", "F1", cancel_request())

    assert sorted(r.id for r in result.cancelled) == ["abandoned", "queued", "waiting"]
    assert result.requested == ["driven"]
    for run in result.cancelled:
        assert run.status == "cancelled" and run.error == "deleted by Alice"
        assert run.finished_at == T0 and run.wake_at is None
    by_id = {r.id: r for r in result.cancelled}
    assert by_id["waiting"].error_step == "pause"
    assert by_id["queued"].error_step is None
    finished = await runs.get("finished")
    other = await runs.get("other")
    assert finished is not None and finished.status == "succeeded"
    assert other is not None and other.status == "queued"
    # Cancelled runs are never claimed again.
    assert [c.run.id for c in await runs.claim_due(T0, THEIRS, limit=20)] == ["other"]


async def test_a_flagged_run_refuses_writes_until_its_driver_ends_it(runs: RunStore) -> None:
    await runs.insert(run_record(), MINE)
    assert await runs.end_cancelled("R1", MINE, T0, None, None, {}) is None  # not flagged
    result = await runs.cancel_flow_runs("T0TEAM", "F1", cancel_request())
    assert result.requested == ["R1"] and result.cancelled == []

    assert not await runs.record_step("R1", MINE, done("hello"), {})
    assert not await runs.park("R1", MINE, waiting("pause"), LATER, "delay", {})
    assert not await runs.finish("R1", MINE, "succeeded", T0, None, None, None, {})
    assert await runs.end_cancelled("R1", THEIRS, T0, None, None, {}) is None

    request = await runs.end_cancelled("R1", MINE, LATER, None, done("hello"), {"vars": {"a": 1}})
    assert request is not None
    assert (request.reason, request.by, request.words) == (
        "the flow was deleted",
        ALICE,
        "deleted by Alice",
    )
    stored = await runs.get("R1")
    assert stored is not None
    assert stored.status == "cancelled" and stored.error == "deleted by Alice"
    assert stored.finished_at == LATER and stored.steps["hello"].status == "succeeded"
    assert stored.vars == {"a": 1}
    assert await runs.end_cancelled("R1", MINE, LATER, None, None, {}) is None


async def test_a_flagged_run_whose_driver_died_is_claimed_with_its_cancel(runs: RunStore) -> None:
    await runs.insert(run_record(), Lease("dying", T0 + timedelta(seconds=10)))
    await runs.cancel_flow_runs("T0TEAM", "F1", cancel_request())
    [claim] = await runs.claim_due(T0 + timedelta(seconds=11), MINE, limit=20)
    assert claim.cancel is not None and claim.cancel.words == "deleted by Alice"
    assert await runs.end_cancelled("R1", MINE, LATER, None, None, {}) is not None


async def test_earlier_steps_ride_along_with_each_write(runs: RunStore) -> None:
    await runs.insert(run_record(run_id="R1"), MINE)
    assert await runs.record_step("R1", MINE, done("b"), {}, earlier=[done("a", x=1)])
    assert await runs.park("R1", MINE, waiting("pause"), LATER, "delay", {}, earlier=[done("c")])
    stored = await runs.get("R1")
    assert stored is not None and list(stored.steps) == ["a", "b", "c", "pause"]
    assert stored.steps["a"].output == {"x": 1}
    await runs.insert(run_record(run_id="R2"), MINE)
    assert await runs.finish("R2", MINE, "succeeded", LATER, None, None, done("z"), {},
                             earlier=[done("route.y")])  # fmt: skip
    ended = await runs.get("R2")
    assert ended is not None and list(ended.steps) == ["route.y", "z"]


async def test_in_progress_of_reads_the_unfinished_runs_of_many_flows(runs: RunStore) -> None:
    other, idle = flow_record(flow_id="F2", name="Other"), flow_record(flow_id="F3", name="Idle")
    await runs.insert(run_record(run_id="R1", run_key="sched:F1:a"), MINE)
    await runs.insert(run_record(run_id="R2"), None)  # queued
    await runs.insert(run_record(run_id="R3"), MINE)
    assert await runs.finish("R3", MINE, "succeeded", LATER, None, None, None, {})
    await parked(runs, "R4", flow=other)
    await runs.insert(run_record(idle, run_id="R5"), MINE)
    assert await runs.finish("R5", MINE, "failed", LATER, None, None, None, {})
    found = await runs.in_progress_of(["F1", "F2", "F3", "F9"])
    assert set(found) == {"F1", "F2"}
    assert sorted((r.id, r.status, r.run_key) for r in found["F1"]) == [
        ("R1", "running", "sched:F1:a"),
        ("R2", "queued", None),
    ]
    assert [(r.id, r.flow_id, r.status) for r in found["F2"]] == [("R4", "F2", "waiting")]
    assert await runs.in_progress_of([]) == {}
