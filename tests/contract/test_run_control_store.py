"""The run store's run-control and concurrency methods (`cancel_run`, `reopen`,
`oldest_held`, `held_flows`, `unhold`) and the run-slots store, against the in-memory and
the MongoDB implementation."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest

from flows.records import StepResult
from flows.run_model import CancelRequest, Lease, RunStore
from flows.testing.memory.slots import MemoryRunSlots
from storage.run_slots_repo import MongoRunSlots
from tests.builders import ALICE, BOB, T0, flow_record, run_record
from tests.contract.conftest import _store

MINE = Lease("me", T0 + timedelta(seconds=30))
THEIRS = Lease("them", T0 + timedelta(seconds=30))
LATER = T0 + timedelta(minutes=5)
LIMITED = """
name: {name}
concurrency: 2
steps:
  - {{id: hello, type: post_message, channel: "#general", text: "hello"}}
"""


@pytest.fixture
async def slots(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(backend, motor_client, db_name, MemoryRunSlots, MongoRunSlots):
        yield store


def result(step_id: str, status: str = "succeeded", error: str | None = None) -> StepResult:
    return StepResult(
        step_id=step_id,
        type="post_message",
        status=status,
        error=error,
        started_at=T0,  # type: ignore[arg-type]
    )


def request(by: str = ALICE) -> CancelRequest:
    return CancelRequest(reason="cancelled", by=by, at=T0, words=f"cancelled by {by}")


# ------------------------------------------------------------------ cancel_run


async def test_cancel_run_ends_idle_runs_at_once(runs: RunStore) -> None:
    await runs.insert(run_record(run_id="queued"), None)
    await runs.insert(run_record(run_id="waiting"), MINE)
    waiting = StepResult(step_id="pause", type="delay", status="waiting", started_at=T0)
    assert await runs.park("waiting", MINE, waiting, LATER, "delay", {})
    await runs.insert(run_record(run_id="abandoned"), Lease("dead", T0 - timedelta(seconds=1)))

    for run_id, stopped_at in (("queued", None), ("waiting", "pause"), ("abandoned", None)):
        outcome = await runs.cancel_run(run_id, request())
        assert not isinstance(outcome, bool), run_id
        assert outcome.status == "cancelled" and outcome.error == f"cancelled by {ALICE}"
        assert outcome.cancelled_by == ALICE and outcome.finished_at == T0
        assert outcome.error_step == stopped_at and outcome.wake_at is None
        stored = await runs.get(run_id)
        assert stored is not None and stored.status == "cancelled"
    # Ended: a second cancel, or one of a finished or unknown run, does nothing.
    assert await runs.cancel_run("queued", request(BOB)) is False
    assert await runs.cancel_run("nope", request()) is False
    assert [c.run.id for c in await runs.claim_due(LATER, THEIRS, limit=10)] == []


async def test_cancel_run_flags_a_driven_run_which_its_driver_ends(runs: RunStore) -> None:
    await runs.insert(run_record(), MINE)
    assert await runs.cancel_run("R1", request(BOB)) is True
    # No further step is recorded; the driver ends the run with the request's words.
    assert not await runs.record_step("R1", MINE, result("hello"), {})
    ended = await runs.end_cancelled("R1", MINE, LATER, None, result("hello"), {})
    assert ended is not None and ended.by == BOB
    stored = await runs.get("R1")
    assert stored is not None and stored.status == "cancelled"
    assert stored.error == f"cancelled by {BOB}" and stored.steps["hello"].status == "succeeded"
    assert await runs.cancel_run("R1", request()) is False


# ------------------------------------------------------------------ reopen


async def _failed_run(runs: RunStore) -> None:
    await runs.insert(run_record(), MINE)
    assert await runs.record_step("R1", MINE, result("first"), {})
    failed = result("second", "failed", "boom")
    assert await runs.finish("R1", MINE, "failed", T0, "step second: boom", "second", failed, {})


async def test_reopen_forgets_the_failed_steps_and_queues_the_run(runs: RunStore) -> None:
    await _failed_run(runs)
    retry = {"by": ALICE, "at": LATER, "from_step": "second"}
    reopened = await runs.reopen("R1", ["second"], retry, False)
    assert reopened is not None
    assert reopened.status == "queued" and not reopened.held
    assert set(reopened.steps) == {"first"}
    assert reopened.error is None and reopened.error_step is None
    assert reopened.finished_at is None
    assert reopened.retries == [retry]
    assert await runs.get("R1") == reopened
    # Only a failed run reopens (not twice, not a queued or unknown one).
    assert await runs.reopen("R1", [], retry, False) is None
    assert await runs.reopen("nope", [], retry, False) is None
    # The waker takes it, and it keeps its finished step.
    [claim] = await runs.claim_due(T0, THEIRS, limit=10)
    assert claim.run.id == "R1" and set(claim.run.steps) == {"first"}


async def test_a_reopened_run_held_for_a_slot_is_not_claimed(runs: RunStore) -> None:
    await _failed_run(runs)
    reopened = await runs.reopen("R1", ["second"], {"by": ALICE}, True)
    assert reopened is not None and reopened.held
    assert await runs.claim_due(T0, THEIRS, limit=10) == []
    held = await runs.oldest_held("F1")
    assert held is not None and held.id == "R1"


# ------------------------------------------------------------------ held runs


async def test_held_runs_wait_in_order_until_unheld(runs: RunStore) -> None:
    limited = flow_record(LIMITED.format(name="Limited"))
    other = flow_record(flow_id="F2", name="Other")
    for n, flow in ((1, limited), (2, limited), (3, other)):
        run = run_record(flow, run_id=f"R{n}", created_at=T0 + timedelta(seconds=n), held=True)
        await runs.insert(run, None)
    await runs.insert(run_record(limited, run_id="free"), None)  # not held

    first = await runs.oldest_held("F1")
    assert first is not None and first.id == "R1"
    assert sorted(await runs.held_flows(10)) == [("F1", 2), ("F2", 1)]
    assert len(await runs.held_flows(1)) == 1
    # Held runs are not claimed; the one that is not held is.
    assert [c.run.id for c in await runs.claim_due(T0, THEIRS, limit=10)] == ["free"]

    assert await runs.unhold("R1") is True
    assert await runs.unhold("R1") is False  # once
    assert await runs.unhold("free") is False
    assert await runs.unhold("nope") is False
    second = await runs.oldest_held("F1")
    assert second is not None and second.id == "R2"
    [claim] = await runs.claim_due(T0, MINE, limit=10)
    assert claim.run.id == "R1"

    assert await runs.unhold("R2") is True
    assert await runs.oldest_held("F1") is None
    assert await runs.held_flows(10) == [("F2", 1)]
    # A held run that is cancelled is held no more.
    assert not isinstance(await runs.cancel_run("R3", request()), bool)
    assert await runs.oldest_held("F2") is None and await runs.held_flows(10) == []


# ------------------------------------------------------------------ run slots


async def test_slots_are_taken_up_to_the_limit_and_freed(slots: Any) -> None:
    assert await slots.holders("F1") == []
    assert await slots.take("F1", "R1", 2)
    assert await slots.take("F1", "R1", 2)  # taking it again: still held, once
    assert await slots.take("F1", "R2", 2)
    assert not await slots.take("F1", "R3", 2)
    assert await slots.holders("F1") == ["R1", "R2"]
    assert await slots.take("F2", "R9", 1)  # each flow has its own slots
    await slots.release("F1", "R1")
    await slots.release("F1", "R1")  # releasing twice is harmless
    await slots.release("F3", "R1")
    assert await slots.take("F1", "R3", 2)
    assert await slots.holders("F1") == ["R2", "R3"]
    assert await slots.holders("F2") == ["R9"]


async def test_concurrent_takes_never_exceed_the_limit(slots: Any) -> None:
    taken = await asyncio.gather(*(slots.take("F1", f"R{n}", 2) for n in range(8)))
    assert sum(taken) == 2
    assert len(await slots.holders("F1")) == 2
