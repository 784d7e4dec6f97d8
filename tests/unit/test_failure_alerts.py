"""Failure alerts with successes settled in batches (SPEC §14, issue 20): the order of
failures and successes is kept, and each alert and recovery is told once across
processes sharing one streak store."""

from __future__ import annotations

from datetime import timedelta

from flows.alerts import FailureAlerts
from flows.records import FlowRecord, RunRecord
from flows.testing.memory import MemoryFailureStreaks
from tests.builders import T0, flow_record, run_record

FLOW = flow_record(
    """
name: Fragile
alert_after: 2
steps:
  - {id: hello, type: post_message, channel: "#general", text: "hello"}
"""
)


class Flows:
    async def get(self, team_id: str, flow_id: str) -> FlowRecord | None:
        return FLOW


class Told:
    def __init__(self) -> None:
        self.said: list[tuple[str, str, int]] = []

    async def failing(self, flow: FlowRecord, run: RunRecord, failures: int) -> None:
        self.said.append(("failing", run.id, failures))

    async def recovered(self, flow: FlowRecord, run: RunRecord, failures: int) -> None:
        self.said.append(("recovered", run.id, failures))


def ended(run_id: str, status: str, second: int) -> RunRecord:
    at = T0 + timedelta(seconds=second)
    return run_record(FLOW, run_id=run_id, status=status, finished_at=at)


def replica(streaks: MemoryFailureStreaks, told: Told) -> FailureAlerts:
    return FailureAlerts(streaks, Flows(), told, flush_every=3600)  # flushed by the test


async def test_a_success_is_settled_before_a_later_failure_of_this_process() -> None:
    told = Told()
    alerts = replica(MemoryFailureStreaks(), told)
    await alerts.on_run_finished(ended("R1", "failed", 1))
    await alerts.on_run_finished(ended("R2", "succeeded", 2))  # noted, not flushed yet
    await alerts.on_run_finished(ended("R3", "failed", 3))  # one in a row, not two
    assert told.said == []
    await alerts.on_run_finished(ended("R4", "failed", 4))
    await alerts.on_run_finished(ended("R5", "succeeded", 5))
    await alerts.stop()  # drains
    assert told.said == [("failing", "R4", 2), ("recovered", "R5", 2)]


async def test_a_success_older_than_the_last_failure_resets_nothing() -> None:
    streaks, told = MemoryFailureStreaks(), Told()
    first, second = replica(streaks, told), replica(streaks, told)
    await first.on_run_finished(ended("R1", "failed", 1))
    await first.on_run_finished(ended("R2", "failed", 2))
    await first.on_run_finished(ended("R3", "succeeded", 3))  # noted by the first
    await second.on_run_finished(ended("R4", "failed", 4))  # a later failure elsewhere
    await first.flush()
    assert [said[0] for said in told.said] == ["failing"]
    assert (await streaks.streaks([FLOW.id]))[FLOW.id].count == 3


async def test_the_recovery_is_told_once_across_replicas() -> None:
    streaks, told = MemoryFailureStreaks(), Told()
    first, second = replica(streaks, told), replica(streaks, told)
    await first.on_run_finished(ended("R1", "failed", 1))
    await second.on_run_finished(ended("R2", "failed", 2))
    await first.on_run_finished(ended("R3", "succeeded", 3))
    await second.on_run_finished(ended("R4", "succeeded", 4))
    await first.flush()
    await second.flush()
    assert told.said == [("failing", "R2", 2), ("recovered", "R3", 2)]
    assert await streaks.streaks([FLOW.id]) == {}
