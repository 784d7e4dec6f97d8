"""The run engine's inner state and control signals (used by `flows.runner` only), and
the `Body` a container step (for_each, parallel) runs its steps through.

Several steps may wait at once (approvals in parallel branches, in the iterations of a
concurrent loop): a step that parks is only noted in the drive (`_Drive.parked`); its
branch stops, the others go on until they end or park too, and the run then parks once,
recording every waiting step (`flows.run_writes.park_all`).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import TYPE_CHECKING, Any, Literal, Protocol

from flows.ports import Clock
from flows.records import RunRecord, StepResult
from flows.run_limits import not_recorded
from flows.run_model import (
    CancelRequest,
    Lease,
    Park,
    Scope,
    StepContext,
    StepError,
    StepFailed,
)

if TYPE_CHECKING:
    from flows.runner import Runner

log = logging.getLogger(__name__)


class _LeaseLost(Exception):
    pass


class _Failure(Exception):
    """A step failed: `error` is the run's error, naming the step (and field).
    `transient` and `retry_after` come from the step's `StepFailed` (see flows.retries)."""

    def __init__(self, step_id: str | None, error: str, result: StepResult | None = None) -> None:
        super().__init__(error)
        self.step_id = step_id
        self.error = error
        self.result = result
        self.transient = False
        self.retry_after: float | None = None


class _Parked(Exception):
    pass


class _Stopping(Exception):
    pass


class _Cancelled(Exception):
    """The run was cancelled at a step boundary (already recorded and told)."""


#: Signals that end a drive at once; in a group the strongest wins (cancelled first).
_SIGNALS: tuple[type[Exception], ...] = (_Cancelled, _LeaseLost, _Stopping, _Parked)


def step_failure(
    step_id: str,
    step_type: str,
    started_at: datetime,
    finished_at: datetime,
    message: str,
    field_name: str | None = None,
) -> _Failure:
    where = f"step {step_id}, field {field_name}" if field_name else f"step {step_id}"
    result = StepResult(
        step_id=step_id,
        type=step_type,
        status="failed",
        error=f"field {field_name}: {message}" if field_name else message,
        started_at=started_at,
        finished_at=finished_at,
    )
    return _Failure(step_id, f"{where}: {message}", result)


def flow_outputs(run: RunRecord, clock: Clock) -> dict[str, Any]:
    """The flow's `outputs`, rendered once every step succeeded (a failure names the
    output: `outputs.total: …`)."""
    outputs = run.definition.outputs
    if not outputs:
        return {}
    ctx = StepContext(run, "outputs", clock)
    try:
        return {name: ctx.value(name, source) for name, source in outputs.items()}
    except StepFailed as exc:
        now = clock.now()
        failure = step_failure("outputs", "outputs", now, now, exc.message, exc.field)
        failure.error = f"outputs.{exc.field}: {exc.message}"
        raise failure from None


async def written(runner: Runner, run_id: str, result: StepResult, write: Awaitable[bool]) -> bool:
    """The store's answer to a step's write; a write that raised (a value it cannot hold)
    fails the step with why, rather than leaving the run to be claimed and repeated."""
    try:
        return await write
    except Exception as exc:
        log.warning("run %s: step %s not recorded", run_id, result.step_id, exc_info=True)
        at, message = result.started_at or runner.clock.now(), runner.describe_error(exc)
        raise runner._failure(result.step_id, result.type, at, not_recorded(message)) from None


async def finish_written(
    runner: Runner,
    drive: _Drive,
    status: Literal["succeeded", "failed"],
    now: datetime,
    result: StepResult | None,
    extra: dict[str, Any],
) -> bool:
    """The store's `finish` of the run (its status, error and error step as set); if what
    the run produced cannot be stored, it ends failed with why, without it."""
    run, lease = drive.run, drive.lease
    earlier = [r for r in drive.unwritten if r is not result]
    try:
        ok = await runner.store.finish(
            run.id, lease, status, now, run.error, run.error_step, result, extra, earlier=earlier
        )
    except Exception as exc:
        log.warning("run %s: its end could not be recorded", run.id, exc_info=True)
        run.status, run.error = "failed", not_recorded(runner.describe_error(exc))
        ok = await runner.store.finish(
            run.id, lease, "failed", now, run.error, run.error_step, None, {}
        )
    if ok:
        drive.unwritten = []
    return ok


def alone(run: RunRecord, key: str) -> bool:
    """Is `key` the run's only waiting step (a timer without a time of its own is its)?"""
    return all(k == key or r.status != "waiting" for k, r in run.steps.items())


def _default_describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


@dataclass
class _Drive:
    """In-memory state of a run being driven by this process."""

    run: RunRecord
    lease: Lease
    wake: tuple[str, dict[str, Any]] | None
    cancel: CancelRequest | None = None
    # Claims of it from a driver that died (counted in its record; see flows.run_limits).
    crashes: int = 0
    # Claimed after a crash, and no step recorded since: the steps it starts may have had
    # their effect before the crash (flows.post_recovery).
    in_doubt: bool = False
    dirty_vars: bool = False
    dirty_notify: bool = False
    last_progress: float = 0.0
    # Steps that parked during this drive, waiting to be recorded with the run's park.
    parked: list[tuple[StepResult, Park]] = field(default_factory=list)
    # Finished steps not written yet: they ride along with the run's next write
    # (flows.run_writes).
    unwritten: list[StepResult] = field(default_factory=list)
    # The step resumed with the news the run was woken for (a decision, an answer, a
    # child's end), until the run's next write: the store keeps that news
    # (`pending_resume`) until then, so after a crash it is resumed the same again.
    replayed: str | None = None
    # Told once the run went on from the step it was resumed at (a later step is done,
    # or this drive is over): whoever resumed it waits for that before its own Slack
    # calls (an approval's message updates), so they do not hold up the run's next one.
    went_on: asyncio.Future[None] | None = None
    resumed_at: str | None = None

    def tell_went_on(self, step_key: str | None = None) -> None:
        """A step other than the resumed one is done (`step_key`), or the drive ended."""
        went_on = self.went_on
        if went_on is not None and step_key != self.resumed_at:
            self.went_on = None
            if not went_on.done():
                went_on.set_result(None)

    def extra(self) -> dict[str, Any]:
        """Top-level fields changed since the last write (vars, the notify message)."""
        extra: dict[str, Any] = {}
        if self.dirty_vars:
            extra["vars"] = dict(self.run.vars)
        if self.dirty_notify and self.run.notify_message is not None:
            extra["notify_message"] = self.run.notify_message.model_dump()
        return extra

    def clean(self) -> None:
        self.dirty_vars = self.dirty_notify = False


class _Body:
    """`flows.run_model.Body` for one drive of one container step."""

    def __init__(self, runner: Runner, drive: _Drive) -> None:
        self.runner = runner
        self.drive = drive

    async def run(self, steps: Sequence[Any], scope: Scope) -> None:
        await self.runner._run_steps(self.drive, steps, scope)

    async def record(self, result: StepResult) -> None:
        self.drive.run.steps[result.step_id] = result
        self.drive.unwritten.append(result)

    async def _write(self, result: StepResult) -> None:
        """A body step's failure, written at once (a resumed run knows it failed)."""
        self.drive.run.steps[result.step_id] = result
        await self.runner._write_step(self.drive, result)

    async def attempt(self, steps: Sequence[Any], scope: Scope) -> StepError | None:
        try:
            await self.runner._run_steps(self.drive, steps, scope)
        except _Failure as failure:
            result = failure.result
            if result is None:  # a failure to record is not the body's: the run fails
                raise
            if self.drive.run.steps.get(result.step_id) is not result:
                await self._write(result)
            return StepError(result.step_id, result.error or failure.error)
        return None

    async def group(
        self, jobs: Sequence[Callable[[], Awaitable[None]]], concurrency: int
    ) -> list[str]:
        failures: dict[int, _Failure] = {}
        signals: list[Exception] = []
        parked: list[Exception] = []
        stop = concurrency < len(jobs)  # all at once (parallel): every job starts
        queue = list(enumerate(jobs))

        async def worker() -> None:
            # A job that waits keeps its place (this worker stops); the others go on.
            while (
                queue and not (failures and stop) and not any(s for s in signals if s not in parked)
            ):
                index, job = queue.pop(0)
                try:
                    await job()
                except _Failure as failure:
                    failures[index] = failure
                except _SIGNALS as signal:
                    signals.append(signal)
                    if isinstance(signal, _Parked):
                        parked.append(signal)
                    return

        workers = [
            asyncio.create_task(worker()) for _ in range(max(1, min(concurrency, len(jobs))))
        ]
        try:
            await asyncio.gather(*workers)
        except BaseException:
            for task in workers:
                task.cancel()
            await asyncio.gather(*workers, return_exceptions=True)
            raise
        for kind in _SIGNALS[:-1]:
            for signal in signals:
                if isinstance(signal, kind):
                    raise signal
        for failure in failures.values():
            # The failed step is recorded, so that a resumed run knows this job failed.
            if failure.result is not None:
                await self._write(failure.result)
        if signals:
            raise signals[0]  # parked
        return [failures[index].error for index in sorted(failures)]


async def tell_each(
    listeners: Sequence[Callable[[RunRecord], Awaitable[None]]], run: RunRecord
) -> None:
    """Each listener hears of the ended run; one that fails is logged, never fatal."""
    for listener in list(listeners):
        try:
            await listener(run)
        except Exception:
            logging.getLogger("flows.runner").exception("run %s: a listener failed", run.id)


class _Resumer(Protocol):
    async def resume(self, run_id: str, step_id: str, payload: dict[str, Any]) -> Any: ...


async def tell_parent(runner: _Resumer, run: RunRecord) -> None:
    """A child run (call_flow) ended: wake the step of the parent that waits for it."""
    if run.parent_run is None or run.parent_step is None:
        return
    payload = {"event": "child_run", "run_id": run.id, "status": run.status}
    try:
        await runner.resume(run.parent_run, run.parent_step, payload)
    except Exception:
        # The parent's step also looks at the child when its poll timer comes.
        logging.getLogger("flows.runner").exception(
            "run %s: could not wake its parent run %s", run.id, run.parent_run
        )
