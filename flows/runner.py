"""The run engine: executes a flow's steps, parks and resumes runs, survives restarts.

A run executes one flow version (the definition is copied into the run record). Steps are
executed by `StepExecutor`s looked up by step type in an `ExecutorRegistry`; an executor
returns `Done(output)` or `Park(wake_at, waiting_for)`. A parked run is stored with status
`waiting` and is resumed by the waker loop when `wake_at` passes (the executor's `resume`
gets the `TIMER` payload) or by `Runner.resume(run_id, step_id, payload)` (an approval
decision, for example).

Durability, writes and cancelling: ARCHITECTURE.md, "Runs".
"""

from __future__ import annotations

import asyncio
import copy
import logging
import os
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from typing import Any, Literal

from flows.log_context import about_run
from flows.ports import Clock, IdGenerator
from flows.records import FlowRecord, RunRecord, RunTrigger, StepResult
from flows.retries import Continued, guarded_outcome, mark, replay_failure
from flows.run_drive import (
    _Body,
    _Cancelled,
    _default_describe,
    _Drive,
    _Failure,
    _LeaseLost,
    _Parked,
    _Stopping,
    alone,
    finish_written,
    flow_outputs,
    step_failure,
    tell_each,
    tell_parent,
)
from flows.run_limits import MAX_CRASHES, crashed_repeatedly

# The engine's vocabulary, re-exported: `from flows.runner import Done, Park, …` keeps working.
from flows.run_model import (
    ROOT,
    TIMER,
    BranchingExecutor,
    CancelListener,
    CancelRequest,
    CancelResult,
    ChildCall,
    Claim,
    Done,
    DuplicateRun,
    ExecutorRegistry,
    Lease,
    NullNotifier,
    Outcome,
    Park,
    RunEvent,
    RunNotifier,
    RunRefused,
    RunStore,
    Scope,
    StepContext,
    StepExecutor,
    StepFailed,
    explain_template_error,
    is_branching,
    is_container,
    is_timer,
    plain_cancel_reason,
    template_data,
)
from flows.run_writes import (
    before_notice,
    flush,
    flush_quietly,
    must_flush,
    others,
    park_all,
    write_step,
)
from flows.storable import storable
from flows.workspace_context import for_team

__all__ = [
    "TIMER",
    "BranchingExecutor",
    "CancelListener",
    "CancelRequest",
    "CancelResult",
    "Claim",
    "Done",
    "DuplicateRun",
    "ExecutorRegistry",
    "Lease",
    "NullNotifier",
    "Outcome",
    "Park",
    "RunEvent",
    "RunNotifier",
    "RunRefused",
    "RunStore",
    "Runner",
    "StepContext",
    "StepExecutor",
    "StepFailed",
    "default_owner",
    "explain_template_error",
    "is_timer",
    "template_data",
]

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ the runner


def default_owner() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


class Runner:
    """Starts, drives, parks and resumes runs. Also the waker `Service` (start/stop)."""

    def __init__(
        self,
        store: RunStore,
        executors: ExecutorRegistry,
        clock: Clock,
        ids: IdGenerator,
        notifier: RunNotifier | None = None,
        *,
        describe_error: Callable[[BaseException], str] | None = None,
        describe_cancel: Callable[[CancelRequest], str] | None = None,
        lease_time: timedelta = timedelta(seconds=30),
        poll_interval: float = 0.5,
        stop_grace: float = 5.0,
        progress_interval: float = 1.0,
        resume_patience: float = 30.0,
        owner: str | None = None,
        admit: Callable[[FlowRecord, str], Awaitable[bool]] | None = None,
    ) -> None:
        self.store = store
        self.executors = executors
        self.clock = clock
        self.ids = ids
        self.notifier: RunNotifier = notifier or NullNotifier()
        self.describe_error = describe_error or _default_describe
        # Words for a cancelled run's error (cards word them; plain text without).
        self.describe_cancel = describe_cancel or plain_cancel_reason
        self.lease_time = lease_time
        self.poll_interval = poll_interval
        self.stop_grace = stop_grace
        self.progress_interval = progress_interval
        self.resume_patience = resume_patience
        self.owner = owner or default_owner()
        self.admit = admit  # a flow's concurrency limit (flows.concurrency): False holds it
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waker: asyncio.Task[None] | None = None
        self._stopping = False
        self._kick = asyncio.Event()
        self._last_renew = 0.0
        self.on_cancelled: list[CancelListener] = []
        # Told of each run that ended succeeded or failed (failure alerts, queued slots).
        self.on_finished: list[Callable[[RunRecord], Awaitable[None]]] = []

    # --- public API

    def lease(self) -> Lease:
        return Lease(self.owner, self.clock.now() + self.lease_time)

    async def start_run(
        self,
        flow: FlowRecord,
        trigger: RunTrigger,
        inputs: Mapping[str, Any] | None = None,
        *,
        reply_to: str | None = None,
        run_key: str | None = None,
        depth: int = 0,
        call: ChildCall | None = None,
    ) -> RunRecord:
        """Record a new run of `flow` and drive it in a task the runner
        owns. Returns once the run is stored. RunRefused if the flow is disabled;
        DuplicateRun if a `call` started it already."""
        if not flow.enabled:
            raise RunRefused(flow.name)
        now = self.clock.now()
        run = RunRecord(
            **(call.fields() if call else {"id": self.ids.new_id("R")}),
            team_id=flow.team_id,
            flow_id=flow.id,
            flow_name=flow.name,
            flow_version=flow.version,
            definition=flow.definition,
            status="queued" if self._stopping else "running",
            started_by=trigger.user,
            trigger=trigger,
            inputs=dict(inputs or {}),
            created_at=now,
            started_at=now,
            run_key=run_key,
            depth=depth,
            reply_to=reply_to,
        )
        run.held = (
            not self._stopping and self.admit is not None and not await self.admit(flow, run.id)
        )
        if self._stopping or run.held:
            run.status = "queued"
            await self.store.insert(run, None)
            return run
        lease = self.lease()
        await self.store.insert(run, lease)
        # The driver's own copy; the definition (never changed) is shared, not copied.
        driven = copy.deepcopy(run, {id(run.definition): run.definition})
        self._spawn(_Drive(run=driven, lease=lease, wake=None), "started")
        return run

    async def resume(
        self,
        run_id: str,
        step_id: str,
        payload: Mapping[str, Any],
        went_on: asyncio.Future[None] | None = None,
    ) -> bool:
        """Wake a parked step with `payload` (e.g. an approval's outcome). True if this
        call resumed the run; False if it was not waiting at that step (already resumed,
        finished, unknown). A run still on its way to parking there is waited for.
        `went_on` is resolved once the run went on past that step (`_Drive.went_on`)."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.resume_patience
        while True:
            claim = await self.store.claim_waiting(run_id, step_id, dict(payload), self.lease())
            if claim is not None:
                if self._stopping:
                    await self.store.requeue(run_id, self.owner)
                    if went_on is not None and not went_on.done():
                        went_on.set_result(None)  # it goes on in the next process
                    return True
                drive = self._drive_from_claim(claim)
                drive.went_on, drive.resumed_at = went_on, step_id
                self._spawn(drive, "resumed")
                return True
            run = await self.store.get(run_id)
            if run is None or run.finished:
                return False
            recorded = run.steps.get(step_id)
            if recorded is not None and recorded.status != "waiting":
                return False  # another wake-up got there first
            if recorded is None and run.status == "waiting":
                return False  # the run waits at another step
            # Not parked there yet, or being driven (a timer wake-up): try again shortly.
            if loop.time() > deadline:
                log.warning("run %s: step %s did not become resumable in time", run_id, step_id)
                return False
            await asyncio.sleep(0.05)

    async def cancel_flow_runs(
        self, team_id: str, flow_id: str, by: str | None, reason: str
    ) -> int:
        """Cancel every run of the flow in progress (a deleted flow): queued and waiting
        ones at once, those a process drives right now at their next step boundary.
        The error says `reason` and `by` whom, in `describe_cancel`'s words. The
        `on_cancelled` listeners (approvals) run before this returns; the run's notify
        message and its starter are told in the background. Returns how many runs were
        cancelled or asked to stop."""
        request = CancelRequest(reason=reason, by=by, at=self.clock.now())
        request = replace(request, words=self.describe_cancel(request))
        result = await self.store.cancel_flow_runs(team_id, flow_id, request)
        for run in result.cancelled:
            await self._tell_cancel_listeners(run, request)
            previous = self._tasks.get(run.id)
            self._track(run.id, self._after_cancel(previous, run, request))
        count = len(result.cancelled) + len(result.requested)
        if count:
            log.info(
                "flow %s: %d run(s) cancelled, %d asked to stop (%s)",
                flow_id,
                len(result.cancelled),
                len(result.requested),
                request.error,
            )
        return count

    async def get(self, run_id: str) -> RunRecord | None:
        return await self.store.get(run_id)

    async def history(
        self, team_id: str, flow_id: str, limit: int = 15, started_by: str | None = None
    ) -> list[RunRecord]:
        return await self.store.history(team_id, flow_id, limit, started_by)

    async def wait_for(self, run_id: str) -> None:
        """Wait until this process is no longer driving the run (tests, benchmarks)."""
        task = self._tasks.get(run_id)
        if task is not None:
            await asyncio.gather(task, return_exceptions=True)

    async def idle(self) -> None:
        while self._tasks:
            await asyncio.gather(*list(self._tasks.values()), return_exceptions=True)

    @property
    def active_runs(self) -> list[str]:
        return list(self._tasks)

    # --- Service

    async def start(self) -> None:
        self._stopping = False
        self._last_renew = asyncio.get_running_loop().time()
        if self._waker is None:
            self._waker = asyncio.create_task(self._waker_loop(), name="runner-waker")

    async def stop(self) -> None:
        """Running steps get `stop_grace` seconds to finish; runs then stop before their
        next step, and any still busy are interrupted; all go back to `queued` (or stay
        parked) and resume at the next start."""
        self._stopping = True
        self._kick.set()
        if self._waker is not None:
            self._waker.cancel()
            await asyncio.gather(self._waker, return_exceptions=True)
            self._waker = None
        pending = list(self._tasks.items())
        if pending:
            _done, still = await asyncio.wait(
                [task for _, task in pending], timeout=self.stop_grace
            )
            for task in still:
                task.cancel()
            if still:
                await asyncio.gather(*still, return_exceptions=True)
            for run_id, _task in pending:
                # Runs that finished or parked are no longer "running": a no-op for them.
                try:
                    await self.store.requeue(run_id, self.owner)
                except Exception:
                    log.exception("run %s: could not be queued for the next start", run_id)

    async def wake_due(self) -> int:
        """One pass of the waker: claim due runs and drive them. Returns how many."""
        if self._stopping:
            return 0
        claims = await self.store.claim_due(self.clock.now(), self.lease(), limit=20)
        for claim in claims:
            self._spawn(self._drive_from_claim(claim), "resumed")
        return len(claims)

    # --- internals

    def _drive_from_claim(self, claim: Claim) -> _Drive:
        c = claim
        return _Drive(c.run, self.lease(), c.resume, c.cancel, c.crashes, c.after_crash)

    def _spawn(self, drive: _Drive, event: RunEvent) -> None:
        previous = self._tasks.get(drive.run.id)
        # Every Slack call of the run uses its workspace's token (many workspaces: OAuth).
        work = for_team(drive.run.team_id, self._drive_after(previous, drive, event))
        self._track(drive.run.id, work)

    def _track(self, run_id: str, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as the run's task (`wait_for`, `idle` and `stop` see it)."""
        task = asyncio.create_task(about_run(run_id, work), name=f"run-{run_id}")
        self._tasks[run_id] = task

        def _done(t: asyncio.Task[None]) -> None:
            if self._tasks.get(run_id) is t:
                del self._tasks[run_id]
            if not t.cancelled() and t.exception() is not None:
                log.error("run %s crashed", run_id, exc_info=t.exception())

        task.add_done_callback(_done)

    async def _waker_loop(self) -> None:
        while not self._stopping:
            try:
                await self.wake_due()
                await self._renew_leases()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("waker pass failed")
            self._kick.clear()
            try:
                await asyncio.wait_for(self._kick.wait(), timeout=self.poll_interval)
            except asyncio.TimeoutError:
                pass

    async def _renew_leases(self) -> None:
        loop_now = asyncio.get_running_loop().time()
        if not self._tasks or loop_now - self._last_renew < self.lease_time.total_seconds() / 3:
            return
        self._last_renew = loop_now
        await self.store.renew(list(self._tasks), self.lease())

    async def _notify(self, drive: _Drive, event: RunEvent) -> None:
        if event == "progress":
            now = asyncio.get_running_loop().time()
            if now - drive.last_progress < self.progress_interval:
                return
            drive.last_progress = now
            if before_notice(self, drive):
                await flush(self, drive)
        try:
            ref = await self.notifier.run_event(drive.run, event)
        except Exception:
            log.exception("run %s: notification (%s) failed", drive.run.id, event)
            return
        if ref is not None and ref != drive.run.notify_message:
            drive.run.notify_message = ref
            drive.dirty_notify = True

    async def _drive_after(
        self, previous: asyncio.Task[None] | None, drive: _Drive, event: RunEvent
    ) -> None:
        # A run woken while its previous drive is still wrapping up (a parked run telling
        # Slack it waits) goes on once that drive has ended.
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        try:
            await self._drive(drive, event)
        finally:
            drive.tell_went_on()

    async def _drive(self, drive: _Drive, event: RunEvent) -> None:
        run = drive.run
        if drive.cancel is not None:
            # Claimed while asked to stop (its driver died or was shut down): end it now.
            if not await self._cancelled_at_boundary(drive, None):
                log.warning("run %s: lease lost before its cancellation was recorded", run.id)
            return
        if drive.crashes > MAX_CRASHES:
            await self._finish(drive, "failed", _Failure(None, crashed_repeatedly(drive.crashes)))
            return
        await self._notify(drive, event)
        try:
            await self._run_steps(drive, run.definition.steps, ROOT)
            run.outputs = self._outputs(drive)
        except _Parked:
            try:
                await park_all(self, drive)
            except (_LeaseLost, _Cancelled):
                return
            await self._notify(drive, "waiting")
            return
        except _Stopping:
            await flush_quietly(self, drive)  # steps another branch finished meanwhile
            return
        except asyncio.CancelledError:
            await flush_quietly(self, drive)  # interrupted by a stop: keep what finished
            raise
        except (_LeaseLost, _Cancelled):
            return
        except _Failure as failure:
            await self._finish(drive, "failed", failure)
            return
        await self._finish(drive, "succeeded", None)

    def _outputs(self, drive: _Drive) -> dict[str, Any]:
        return flow_outputs(drive.run, self.clock)

    async def _finish(
        self,
        drive: _Drive,
        status: Literal["succeeded", "failed"],
        failure: _Failure | None,
    ) -> None:
        run = drive.run
        now = self.clock.now()
        error = failure.error if failure else None
        result = failure.result if failure else None
        run.status = status
        run.finished_at = now
        run.error = error
        run.error_step = failure.step_id if failure else None
        run.wake_at = None
        run.waiting_for = None
        if result is not None and failure is not None and failure.step_id != "outputs":
            run.steps[result.step_id] = result
        else:
            result = None
        extra = drive.extra()
        if run.outputs:
            extra["outputs"] = run.outputs
        ok = await finish_written(self, drive, status, now, result, extra)
        if not ok:
            if not await self._cancelled_at_boundary(drive, result):
                log.warning("run %s: lease lost before its end was recorded", run.id)
            return
        drive.clean()
        await self._notify(drive, "finished")
        if drive.dirty_notify and run.notify_message is not None:
            # The message was posted only now (no earlier write carried it): record it.
            await self.store.record_notify(run.id, run.notify_message)
        await tell_parent(self, run)
        await tell_each(self.on_finished, run)

    async def _run_steps(self, drive: _Drive, steps: Sequence[Any], scope: Scope) -> None:
        for step in steps:
            await self._run_step(drive, step, scope)

    async def _run_step(self, drive: _Drive, step: Any, scope: Scope) -> None:
        run = drive.run
        key = scope.key(step.id)
        recorded = run.steps.get(key)
        executor = self.executors.get(step.type)
        if recorded is not None and recorded.status in ("succeeded", "skipped"):
            # Done before a restart or a wait: follow the branch it recorded.
            if executor is not None and is_branching(executor):
                await self._run_steps(drive, executor.children(step, recorded.output), scope)
            return
        if recorded is not None and recorded.status == "failed":
            # It failed in a branch or an iteration before the run waited elsewhere (and
            # the run went on if the step says `on_error: continue`).
            return replay_failure(step, key, recorded)
        if must_flush(self, drive, step.type):
            await flush(self, drive)  # a finished side effect is recorded before this starts
        if self._stopping:
            raise _Stopping
        started_at = recorded.started_at if recorded and recorded.started_at else self.clock.now()
        vars_before = dict(run.vars)
        ctx = StepContext(run, key, self.clock, scope)
        ctx.in_doubt = drive.in_doubt  # it may have run before the crash (see post_recovery)
        outcome = await guarded_outcome(self, drive, step, executor, recorded, started_at, ctx)
        if run.vars != vars_before:
            drive.dirty_vars = True
        if isinstance(outcome, Continued):
            return
        if isinstance(outcome, Park):
            result = StepResult(
                step_id=key,
                type=step.type,
                status="waiting",
                output=storable(dict(outcome.output)),
                started_at=started_at,
                wake_at=outcome.wake_at,
            )
            run.steps[key] = result
            drive.parked.append((result, outcome))
            raise _Parked
        result = await self._record_done(drive, step, key, outcome, started_at)
        await self._notify(drive, "progress")
        if is_branching(executor):
            await self._run_steps(drive, executor.children(step, result.output), scope)

    async def _outcome(
        self,
        drive: _Drive,
        step: Any,
        executor: StepExecutor | None,
        recorded: StepResult | None,
        started_at: datetime,
        ctx: StepContext,
    ) -> Outcome:
        """Execute the step, or resume it if it waited; any failure is a `_Failure`."""
        step_id = ctx.step_id
        step_type: str = step.type
        try:
            if executor is None:
                raise StepFailed(f"no executor for step type {step_type!r}")
            if is_container(executor):
                return await executor.run_body(step, ctx, _Body(self, drive))
            if recorded is not None and recorded.status == "waiting":
                return await self._resume_step(drive, step, executor, recorded, ctx)
            return await executor.execute(step, ctx)
        except (_Parked, _LeaseLost, _Cancelled, _Stopping, asyncio.CancelledError):
            raise
        except StepFailed as exc:
            failure = self._failure(step_id, step_type, started_at, exc.message, exc.field)
            raise mark(failure, exc) from None
        except Exception as exc:
            log.info("run %s: step %s failed", drive.run.id, step_id, exc_info=True)
            failure = self._failure(step_id, step_type, started_at, self.describe_error(exc))
            raise mark(failure, exc) from None

    async def _resume_step(
        self,
        drive: _Drive,
        step: Any,
        executor: StepExecutor,
        recorded: StepResult,
        ctx: StepContext,
    ) -> Outcome:
        run = drive.run
        key = ctx.step_id
        own_wake = recorded.wake_at
        due = own_wake is not None and own_wake <= self.clock.now()
        if drive.wake is not None and drive.wake[0] == key:
            payload = drive.wake[1]
            drive.wake = None
            if not is_timer(payload):
                drive.replayed = key  # see flows.run_writes.must_flush
            if not is_timer(payload) or due or (own_wake is None and alone(run, key)):
                return await executor.resume(step, ctx, payload)
        elif due:
            # Its own time has come (the run was woken for another waiting step).
            return await executor.resume(step, ctx, TIMER)
        # Woken without news for this step: wait on as before.
        wake_at = own_wake if own_wake is not None else run.wake_at
        drive.parked.append((recorded, Park(wake_at, run.waiting_for, recorded.output)))
        raise _Parked

    async def _record_done(
        self, drive: _Drive, step: Any, key: str, outcome: Done, started_at: datetime
    ) -> StepResult:
        """The finished step, kept for the run's next write (flows.run_writes)."""
        result = StepResult(
            step_id=key,
            type=step.type,
            status="succeeded",
            output=storable(dict(outcome.output)),
            started_at=started_at,
            finished_at=self.clock.now(),
        )
        drive.run.steps[key] = result
        drive.unwritten.append(result)
        drive.tell_went_on(key)
        return result

    async def _write_step(self, drive: _Drive, result: StepResult) -> None:
        """Write `result` now, with the steps finished since the last write."""
        await write_step(self, drive, result)

    async def _cancelled_at_boundary(self, drive: _Drive, result: StepResult | None) -> bool:
        """A write at a step boundary was refused: if the run was asked to stop, end it
        `cancelled` (keeping `result`, the step that just ended) and tell; True. False:
        the lease is lost (another process drives the run)."""
        run = drive.run
        now = self.clock.now()
        stopped_at = result.step_id if result and result.status != "succeeded" else None
        earlier, extra = others(drive, result), drive.extra()
        request = await self.store.end_cancelled(
            run.id, drive.lease, now, stopped_at, result, extra, earlier=earlier
        )
        if request is None:
            return False
        drive.unwritten = []
        if result is not None:
            run.steps[result.step_id] = result
        run.status = "cancelled"
        run.finished_at = now
        run.error = request.error
        run.error_step = stopped_at
        run.wake_at = None
        run.waiting_for = None
        drive.clean()
        await self._tell_cancel_listeners(run, request)
        await self._notify_cancelled(drive)
        return True

    async def _after_cancel(
        self, previous: asyncio.Task[None] | None, run: RunRecord, request: CancelRequest
    ) -> None:
        # A drive of ours still wrapping up (a parked run telling Slack it waits) ends
        # first, so that "cancelled" is the message's last word.
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await self._notify_cancelled(_Drive(run=run, lease=self.lease(), wake=None))

    async def _notify_cancelled(self, drive: _Drive) -> None:
        await self._notify(drive, "cancelled")
        if drive.dirty_notify and drive.run.notify_message is not None:
            await self.store.record_notify(drive.run.id, drive.run.notify_message)
            drive.dirty_notify = False

    async def _tell_cancel_listeners(self, run: RunRecord, request: CancelRequest) -> None:
        for listener in list(self.on_cancelled):
            try:
                await listener(run, request)
            except Exception:
                log.exception("run %s: a cancellation listener failed", run.id)

    def _schedule_kick(self, wake_at: datetime) -> None:
        """Wake the waker loop right when a short wait ends (it polls anyway)."""
        delay = (wake_at - self.clock.now()).total_seconds()
        if 0 < delay < self.poll_interval * 4:
            asyncio.get_running_loop().call_later(delay, self._kick.set)

    def _failure(
        self,
        step_id: str,
        step_type: str,
        started_at: datetime,
        message: str,
        field_name: str | None = None,
    ) -> _Failure:
        return step_failure(step_id, step_type, started_at, self.clock.now(), message, field_name)
