"""`MemoryRunStore`: the runs, with their leases, wake-ups and cancel flags."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from flows.records import MessageRef, RunRecord, StepResult
from flows.run_model import (
    TIMER,
    CancelRequest,
    CancelResult,
    Claim,
    DuplicateRun,
    Lease,
    RunInProgress,
)
from flows.testing.memory.plain import limited, plain


def _stored_step(result: StepResult) -> StepResult:
    return StepResult.model_validate(plain(result.model_dump(mode="python")))


def _stored_run(run: RunRecord) -> RunRecord:
    copy = run.model_copy(deep=True)
    copy.inputs = plain(copy.inputs)
    copy.vars = plain(copy.vars)
    copy.trigger.data = plain(copy.trigger.data)
    copy.steps = {k: _stored_step(v) for k, v in copy.steps.items()}
    return copy


@dataclass
class _RunRow:
    """A stored run and what the engine never sees as record fields (see runs_repo)."""

    run: RunRecord
    lease_owner: str | None = None
    lease_until: datetime | None = None
    pending_resume: tuple[str, dict[str, Any]] | None = None
    cancel_requested: CancelRequest | None = None
    crashes: int = 0

    def drop_lease(self) -> None:
        self.lease_owner = None
        self.lease_until = None
        self.pending_resume = None

    def take_lease(self, lease: Lease) -> None:
        self.run.status = "running"
        self.lease_owner = lease.owner
        self.lease_until = lease.until

    def apply(
        self,
        extra: Mapping[str, Any],
        result: StepResult | None = None,
        earlier: Sequence[StepResult] = (),
    ) -> None:
        """`$set` of top-level fields (vars, notify_message) and of steps' results."""
        for name, value in plain(extra).items():
            # Validated as an assignment would be: a dumped MessageRef becomes one again.
            RunRecord.__pydantic_validator__.validate_assignment(self.run, name, value)
        for done in [*earlier, *([result] if result is not None else [])]:
            self.run.steps[done.step_id] = _stored_step(done)

    def waiting_step(self) -> str | None:
        return next((k for k, v in self.run.steps.items() if v.status == "waiting"), None)

    def claim(self, after_crash: bool = False) -> Claim:
        resume = (
            (self.pending_resume[0], dict(self.pending_resume[1])) if self.pending_resume else None
        )
        run = self.run.model_copy(deep=True)
        return Claim(run, resume, self.cancel_requested, self.crashes, after_crash)

    def end_cancelled(self, at: datetime, request: CancelRequest, error_step: str | None) -> None:
        run = self.run
        run.status = "cancelled"
        run.cancelled_by = request.by
        run.held = False
        error = request.error
        run.finished_at = at
        run.error = error
        run.error_step = error_step
        run.wake_at = None
        run.waiting_for = None
        self.drop_lease()
        self.cancel_requested = None


_UNFINISHED = ("queued", "waiting", "running")


class MemoryRunStore:
    """`flows.run_model.RunStore` in memory (MongoDB: `storage.runs_repo.MongoRunStore`)."""

    def __init__(self) -> None:
        self._rows: dict[str, _RunRow] = {}

    # --- writes

    async def insert(self, run: RunRecord, lease: Lease | None) -> None:
        taken = {row.run.run_key for row in self._rows.values() if row.run.run_key is not None}
        if run.id in self._rows or (run.run_key is not None and run.run_key in taken):
            raise DuplicateRun(run.run_key or run.id)
        row = _RunRow(_stored_run(run))
        if lease is not None:
            row.take_lease(lease)
        self._rows[run.id] = row

    def _ours(self, run_id: str, lease: Lease) -> _RunRow | None:
        # A run asked to stop takes no more writes: its driver ends it (`end_cancelled`).
        row = self._rows.get(run_id)
        if (
            row is None
            or row.run.status != "running"
            or row.lease_owner != lease.owner
            or row.cancel_requested is not None
        ):
            return None
        return row

    async def record_step(
        self,
        run_id: str,
        lease: Lease,
        result: StepResult,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> bool:
        row = self._ours(run_id, lease)
        if row is None:
            return False
        row.apply(extra, result, earlier)
        row.lease_until = lease.until
        row.pending_resume = None
        return True

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
        row = self._ours(run_id, lease)
        if row is None:
            return False
        row.apply(extra, result, earlier)
        row.run.status = "waiting"
        row.run.wake_at = wake_at
        row.run.waiting_for = waiting_for
        row.drop_lease()
        return True

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
        row = self._ours(run_id, lease)
        if row is None:
            return False
        run = row.run
        run.status = status
        run.finished_at = finished_at
        run.error = error
        run.error_step = error_step
        run.wake_at = None
        run.waiting_for = None
        row.apply(extra, result, earlier)
        row.drop_lease()
        return True

    async def record_notify(self, run_id: str, ref: MessageRef) -> None:
        row = self._rows.get(run_id)
        if row is not None:
            row.run.notify_message = ref.model_copy()

    async def requeue(self, run_id: str, owner: str) -> None:
        row = self._rows.get(run_id)
        if row is not None and row.run.status == "running" and row.lease_owner == owner:
            # The pending wake-up stays: the next claim replays it.
            row.run.status = "queued"
            row.lease_owner = row.lease_until = None

    async def renew(self, run_ids: Sequence[str], lease: Lease) -> None:
        for run_id in run_ids:
            row = self._rows.get(run_id)
            if row is not None and row.run.status == "running" and row.lease_owner == lease.owner:
                row.lease_until = lease.until

    # --- claims

    async def claim_waiting(
        self, run_id: str, step_id: str, payload: Mapping[str, Any], lease: Lease
    ) -> Claim | None:
        row = self._rows.get(run_id)
        if row is None or row.run.status not in ("waiting", "queued"):
            return None
        recorded = row.run.steps.get(step_id)
        if recorded is None or recorded.status != "waiting":
            return None
        row.take_lease(lease)
        row.pending_resume = (step_id, plain(payload))
        claim = row.claim()
        return Claim(claim.run, (step_id, dict(payload)), claim.cancel)

    def _due(self, row: _RunRow, now: datetime) -> bool:
        status = row.run.status
        if status == "queued":  # queued at a shutdown (not held for a concurrency slot)
            return not row.run.held
        if status == "waiting":  # its time has come
            return row.run.wake_at is not None and row.run.wake_at <= now
        if status == "running":  # its driver died
            return row.lease_until is not None and row.lease_until < now
        return False

    async def claim_due(self, now: datetime, lease: Lease, limit: int) -> list[Claim]:
        due = limited([row for row in self._rows.values() if self._due(row, now)], limit)
        claims: list[Claim] = []
        for row in due:
            if row.run.status == "waiting":
                step_id = row.waiting_step()
                if step_id is not None:
                    # The waiting step gets the TIMER payload.
                    row.pending_resume = (step_id, dict(TIMER))
            elif row.run.status == "running":
                row.crashes += 1  # its driver died: counted
            after_crash = row.run.status in ("running", "queued")
            row.take_lease(lease)
            claims.append(row.claim(after_crash))
        return claims

    # --- run control and concurrency

    async def reopen(
        self, run_id: str, failed: Sequence[str], retry: Mapping[str, Any], held: bool
    ) -> RunRecord | None:
        row = self._rows.get(run_id)
        if row is None or row.run.status != "failed":
            return None
        run = row.run
        for key in failed:
            run.steps.pop(key, None)
        run.status = "queued"
        run.held = held
        run.error = run.error_step = None
        run.finished_at = None
        run.outputs = {}
        run.retries.append(plain(dict(retry)))
        return run.model_copy(deep=True)

    def _held(self, flow_id: str | None = None) -> list[RunRecord]:
        runs = [
            row.run
            for row in self._rows.values()
            if row.run.held
            and row.run.status == "queued"
            and (flow_id is None or row.run.flow_id == flow_id)
        ]
        return sorted(runs, key=lambda run: run.created_at)

    async def oldest_held(self, flow_id: str) -> RunRecord | None:
        held = self._held(flow_id)
        return held[0].model_copy(deep=True) if held else None

    async def held_flows(self, limit: int) -> list[tuple[str, int]]:
        found: dict[str, int] = {}
        for run in self._held():
            found.setdefault(run.flow_id, run.definition.concurrency or 1)
        return list(found.items())[:limit]

    async def unhold(self, run_id: str) -> bool:
        row = self._rows.get(run_id)
        if row is None or row.run.status != "queued" or not row.run.held:
            return False
        row.run.held = False
        return True

    async def cancel_run(self, run_id: str, request: CancelRequest) -> RunRecord | bool:
        row = self._rows.get(run_id)
        if row is None or row.run.status not in _UNFINISHED:
            return False
        run = row.run
        abandoned = run.status == "running" and (
            row.lease_until is None or row.lease_until < request.at
        )
        if run.status == "running" and not abandoned:
            row.cancel_requested = request
            return True
        stopped_at = row.waiting_step() if run.status == "waiting" else None
        row.end_cancelled(request.at, request, stopped_at)
        return run.model_copy(deep=True)

    # --- cancelling

    async def cancel_flow_runs(
        self, team_id: str, flow_id: str, request: CancelRequest
    ) -> CancelResult:
        result = CancelResult()
        for row in list(self._rows.values()):
            run = row.run
            if run.team_id != team_id or run.flow_id != flow_id or run.status not in _UNFINISHED:
                continue
            abandoned = run.status == "running" and (
                row.lease_until is None or row.lease_until < request.at
            )
            if run.status == "running" and not abandoned:
                # Driven right now: its driver stops at the next step boundary.
                row.cancel_requested = request
                result.requested.append(run.id)
                continue
            stopped_at = row.waiting_step() if run.status == "waiting" else None
            row.end_cancelled(request.at, request, stopped_at)
            result.cancelled.append(run.model_copy(deep=True))
        return result

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
        row = self._rows.get(run_id)
        if (
            row is None
            or row.run.status != "running"
            or row.lease_owner != lease.owner
            or row.cancel_requested is None
        ):
            return None
        request = row.cancel_requested
        row.apply(extra, result, earlier)
        row.end_cancelled(finished_at, request, error_step)
        return request

    # --- reads

    async def get(self, run_id: str) -> RunRecord | None:
        row = self._rows.get(run_id)
        return row.run.model_copy(deep=True) if row is not None else None

    async def history(
        self, team_id: str, flow_id: str, limit: int, started_by: str | None = None
    ) -> list[RunRecord]:
        runs = [
            row.run
            for row in self._rows.values()
            if row.run.team_id == team_id
            and row.run.flow_id == flow_id
            and (started_by is None or row.run.started_by == started_by)
        ]
        runs.sort(key=lambda run: run.created_at, reverse=True)
        return [run.model_copy(deep=True) for run in limited(runs, limit)]

    async def in_progress_of(self, flow_ids: Sequence[str]) -> dict[str, list[RunInProgress]]:
        found: dict[str, list[RunInProgress]] = {}
        wanted = set(flow_ids)
        for row in self._rows.values():
            run = row.run
            if run.flow_id in wanted and run.status in _UNFINISHED:
                found.setdefault(run.flow_id, []).append(
                    RunInProgress(run.id, run.flow_id, run.status, run.run_key)
                )
        return found
