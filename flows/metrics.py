"""What the engine reports for monitoring, as a port: `Metrics` (a no-op by default).

`bot.metrics` implements it with prometheus-client; flows/ stays free of it. Labels are
kept to small fixed vocabularies (step types, statuses, Slack method names): never a
user, a flow or a run id.

`MeteredRunStore` wraps the run store the runner writes through, so that every run
started, every step recorded and every run ended is counted exactly where it becomes
durable (once, whichever process drives it, and never for a refused write). It also logs
one line when a run starts and one when it ends, each carrying the run id."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any, Literal, Protocol

from flows.records import RunRecord, StepResult
from flows.run_model import CancelRequest, CancelResult, Lease, RunStore

log = logging.getLogger("flows.runs")


class Metrics(Protocol):
    def run_started(self, trigger: str) -> None: ...

    def run_ended(self, status: str) -> None: ...

    def step_finished(self, step_type: str, status: str, seconds: float) -> None: ...

    def schedule_lateness(self, seconds: float) -> None: ...

    def slack_call(self, method: str, outcome: str, seconds: float) -> None: ...

    def slack_rate_limited(self, method: str) -> None: ...

    def acknowledged(self, kind: str, seconds: float) -> None: ...


class NoMetrics:
    """The default: nothing is measured."""

    def run_started(self, trigger: str) -> None:
        pass

    def run_ended(self, status: str) -> None:
        pass

    def step_finished(self, step_type: str, status: str, seconds: float) -> None:
        pass

    def schedule_lateness(self, seconds: float) -> None:
        pass

    def slack_call(self, method: str, outcome: str, seconds: float) -> None:
        pass

    def slack_rate_limited(self, method: str) -> None:
        pass

    def acknowledged(self, kind: str, seconds: float) -> None:
        pass


class OperationalCounts(Protocol):
    """Gauges read when /metrics is scraped (cheap indexed counts)."""

    async def waiting_runs(self) -> int: ...

    async def pending_approvals(self) -> int: ...


def _seconds(started: datetime | None, finished: datetime | None) -> float | None:
    if started is None or finished is None:
        return None
    return max(0.0, (finished - started).total_seconds())


def schedule_lateness(run: RunRecord) -> float | None:
    """How late a scheduled run started after its slot, in seconds (None: not scheduled)."""
    if run.trigger.type != "schedule":
        return None
    slot = run.trigger.data.get("scheduled_for")
    if not isinstance(slot, str):
        return None
    try:
        return _seconds(datetime.fromisoformat(slot), run.created_at)
    except (TypeError, ValueError):
        return None


class MeteredRunStore:
    """A `RunStore` that reports to `Metrics` after each successful write; every other
    method is the wrapped store's."""

    def __init__(self, store: RunStore, metrics: Metrics) -> None:
        self.store = store
        self.metrics = metrics

    def __getattr__(self, name: str) -> Any:
        return getattr(self.store, name)

    def _step(self, result: StepResult | None) -> None:
        if result is None:
            return
        seconds = _seconds(result.started_at, result.finished_at)
        if seconds is not None:
            self.metrics.step_finished(result.type, result.status, seconds)

    async def insert(self, run: RunRecord, lease: Lease | None) -> None:
        await self.store.insert(run, lease)
        self.metrics.run_started(run.trigger.type)
        log.info(
            "run %s of flow %s v%d started (%s)",
            run.id,
            run.flow_id,
            run.flow_version,
            run.trigger.type,
            extra={"run_id": run.id},
        )
        late = schedule_lateness(run)
        if late is not None:
            self.metrics.schedule_lateness(late)

    async def record_step(
        self,
        run_id: str,
        lease: Lease,
        result: StepResult,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> bool:
        ok = await self.store.record_step(run_id, lease, result, extra, earlier=earlier)
        if ok:
            for done in (*earlier, result):
                self._step(done)
        return ok

    async def park(
        self,
        run_id: str,
        lease: Lease,
        result: StepResult,
        wake_at: datetime | None,
        waiting_for: str | None,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> bool:
        ok = await self.store.park(
            run_id, lease, result, wake_at, waiting_for, extra, earlier=earlier
        )
        if ok:
            for done in earlier:  # steps that rode along (the waiting one is not done)
                self._step(done)
        return ok

    async def finish(
        self,
        run_id: str,
        lease: Lease,
        status: Literal["succeeded", "failed", "cancelled"],
        finished_at: datetime,
        error: str | None,
        error_step: str | None,
        result: StepResult | None,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> bool:
        ok = await self.store.finish(
            run_id, lease, status, finished_at, error, error_step, result, extra, earlier=earlier
        )
        if ok:
            for done in (*earlier, result):
                self._step(done)
            self.metrics.run_ended(status)
            failed_at = f" at step {error_step}" if error_step else ""
            log.info("run %s %s%s", run_id, status, failed_at, extra={"run_id": run_id})
        return ok

    async def end_cancelled(
        self,
        run_id: str,
        lease: Lease,
        finished_at: datetime,
        error_step: str | None,
        result: StepResult | None,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> CancelRequest | None:
        request = await self.store.end_cancelled(
            run_id, lease, finished_at, error_step, result, extra, earlier=earlier
        )
        if request is not None:
            for done in (*earlier, result):
                self._step(done)
            self.metrics.run_ended("cancelled")
            log.info("run %s cancelled", run_id, extra={"run_id": run_id})
        return request

    async def cancel_flow_runs(
        self, team_id: str, flow_id: str, request: CancelRequest
    ) -> CancelResult:
        result = await self.store.cancel_flow_runs(team_id, flow_id, request)
        for run in result.cancelled:
            self.metrics.run_ended("cancelled")
            log.info("run %s cancelled", run.id, extra={"run_id": run.id})
        return result


def _check(store: MeteredRunStore) -> RunStore:
    return store  # mypy: a MeteredRunStore is a RunStore
