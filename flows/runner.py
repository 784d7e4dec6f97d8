"""The run engine: executes a flow's steps, parks and resumes runs, survives restarts.

A run executes one flow version (the definition is copied into the run record). Steps are
executed by `StepExecutor`s looked up by step type in an `ExecutorRegistry`; an executor
returns `Done(output)` or `Park(wake_at, waiting_for)`. A parked run is stored with status
`waiting` and is resumed by the waker loop when `wake_at` passes (the executor's `resume`
gets the `TIMER` payload) or by `Runner.resume(run_id, step_id, payload)` (an approval
decision, for example).

Durability and writes. A run is inserted once, each finished step is one `$set` of
`steps.<id>`, and the end is one update (a failing step's result rides along with it).
Every write after the insert is conditional on the run's lease (owner and expiry), so two
bot processes never drive the same run: a process that lost its lease stops quietly. A
run left `running` with an expired lease (the bot crashed) is claimed again and continues
from the first step not recorded as finished; a condition records the branch it took so
a resumed run follows the same path.

Cancelling (`Runner.cancel_flow_runs`, when a flow is deleted). A queued or waiting run
(or one whose driver died) becomes `cancelled` at once, by a compare-and-set on its
status, so it races safely with the waker and with an approval's resume. A run a process
drives right now gets a `cancel_requested` flag instead: the writes at a step boundary
(record a step, park, finish) are refused while it is set, and the driver then ends the
run `cancelled` there, keeping the result of the step that just ended.
"""

from __future__ import annotations

import asyncio
import logging
import os
import re
import secrets
from collections.abc import Awaitable, Callable, Coroutine, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Final, Literal, Protocol, runtime_checkable

from flows.ports import Clock, IdGenerator
from flows.records import FlowRecord, MessageRef, RunRecord, RunTrigger, StepResult
from flows.templating import TemplateError, is_truthy, render_text, render_value

log = logging.getLogger(__name__)

# ------------------------------------------------------------------ executor protocol


@dataclass(frozen=True)
class Done:
    """The step finished; `output` is what `steps.<id>.…` templates see."""

    output: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Park:
    """The step waits: until `wake_at` (then `resume` gets `TIMER`) and/or for an outside
    event named by `waiting_for` (then `resume` gets the payload of `Runner.resume`).
    `output` is recorded on the waiting step (for example the time it waits until)."""

    wake_at: datetime | None = None
    waiting_for: str | None = None
    output: dict[str, Any] = field(default_factory=dict)


Outcome = Done | Park

#: The payload `resume` receives when a parked step's `wake_at` has passed.
TIMER: Final[Mapping[str, Any]] = {"event": "timer"}


def is_timer(payload: Mapping[str, Any]) -> bool:
    return payload.get("event") == "timer"


class StepFailed(Exception):
    """A step failed; the message is shown as the step's error. `field` names the field
    of the step the error is about, if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.field = field

    def __str__(self) -> str:
        return f"field {self.field}: {self.message}" if self.field else self.message


class StepContext:
    """What an executor sees of the run: its data, template rendering, its variables."""

    def __init__(self, run: RunRecord, step_id: str, clock: Clock) -> None:
        self.run = run
        self.step_id = step_id
        self.clock = clock

    @property
    def team_id(self) -> str:
        return self.run.team_id

    @property
    def vars(self) -> dict[str, Any]:
        return self.run.vars

    def now(self) -> datetime:
        return self.clock.now()

    def set_var(self, name: str, value: Any) -> None:
        self.run.vars[name] = value

    def template_data(self) -> dict[str, Any]:
        return template_data(self.run)

    def render(self, field_name: str, source: Any) -> str:
        """Render a text field; a template error is a StepFailed naming the field."""
        if source is None:
            return ""
        if not isinstance(source, str):
            source = str(source)
        try:
            return render_text(source, self.template_data())
        except TemplateError as exc:
            raise StepFailed(explain_template_error(source, str(exc)), field_name) from None

    def value(self, field_name: str, source: Any) -> Any:
        """Render a value keeping native types (`{{ inputs.amount }}` stays a number)."""
        try:
            return render_value(source, self.template_data())
        except TemplateError as exc:
            raise StepFailed(explain_template_error(source, str(exc)), field_name) from None

    def truthy(self, field_name: str, source: Any) -> bool:
        return is_truthy(self.value(field_name, source))


class StepExecutor(Protocol):
    """Executes one step type. Raise `StepFailed` (or any exception) to fail the step."""

    async def execute(self, step: Any, ctx: StepContext) -> Outcome: ...

    async def resume(self, step: Any, ctx: StepContext, payload: Mapping[str, Any]) -> Outcome:
        """A parked step wakes up: `TIMER` when its wake_at passed, else the payload given
        to `Runner.resume`. Return Done to go on, or Park to wait again."""
        ...


@runtime_checkable
class BranchingExecutor(Protocol):
    """An executor whose step contains steps (condition): after it is done, the runner
    runs `children(step, output)`; the output recorded decides the branch on resume."""

    def children(self, step: Any, output: Mapping[str, Any]) -> Sequence[Any]: ...


class ExecutorRegistry:
    """Step type → executor. Issues plug theirs in with `register` (approval, http…)."""

    def __init__(self, executors: Mapping[str, StepExecutor] | None = None) -> None:
        self._executors: dict[str, StepExecutor] = dict(executors or {})

    def register(self, step_type: str, executor: StepExecutor) -> None:
        self._executors[step_type] = executor

    def get(self, step_type: str) -> StepExecutor | None:
        return self._executors.get(step_type)

    def types(self) -> list[str]:
        return sorted(self._executors)


# ------------------------------------------------------------------ storage and notifier ports


@dataclass(frozen=True)
class Lease:
    """Who drives a run, until when. Every write after the insert checks it."""

    owner: str
    until: datetime


@dataclass(frozen=True)
class CancelRequest:
    """Why runs are cancelled: `reason` ("the flow was deleted"), by whom (a user id, if
    known), when. `error` is what the cancelled run records and shows."""

    reason: str
    by: str | None
    at: datetime

    @property
    def error(self) -> str:
        return f"{self.reason} by <@{self.by}>" if self.by else self.reason


@dataclass(frozen=True)
class CancelResult:
    """What `RunStore.cancel_flow_runs` did: runs now cancelled, and runs being driven
    that were asked to stop at their next step boundary (their ids)."""

    cancelled: list[RunRecord] = field(default_factory=list)
    requested: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class Claim:
    """A run this process now drives; `resume` is (step id, payload) of a waiting step;
    `cancel` is set when the run was asked to stop (it ends cancelled before any step)."""

    run: RunRecord
    resume: tuple[str, dict[str, Any]] | None = None
    cancel: CancelRequest | None = None


class DuplicateRun(Exception):
    """A run with this run_key exists already (one scheduled slot or event, one run)."""


class RunStore(Protocol):
    """The `runs` collection (MongoDB adapter: `storage.runs_repo.MongoRunStore`)."""

    async def insert(self, run: RunRecord, lease: Lease | None) -> None:
        """Insert a new run, leased (status running) or not (queued). DuplicateRun if its
        run_key exists."""
        ...

    async def get(self, run_id: str) -> RunRecord | None: ...

    async def record_step(
        self, run_id: str, lease: Lease, result: StepResult, extra: Mapping[str, Any]
    ) -> bool:
        """`$set steps.<id>` (and `extra` top-level fields: vars, notify_message) and
        extend the lease. False if the lease is not ours any more or a cancel was
        requested (see `end_cancelled`)."""
        ...

    async def park(
        self,
        run_id: str,
        lease: Lease,
        result: StepResult,
        wake_at: datetime | None,
        waiting_for: str | None,
        extra: Mapping[str, Any],
    ) -> bool:
        """Record the waiting step, set status waiting, wake_at, waiting_for; drop the lease.
        False like `record_step`."""
        ...

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
    ) -> bool:
        """The final update (with the failing step's result, if any); drops the lease.
        False like `record_step`."""
        ...

    async def requeue(self, run_id: str, owner: str) -> None:
        """Shutdown: a run we drive goes back to queued, lease dropped."""
        ...

    async def renew(self, run_ids: Sequence[str], lease: Lease) -> None: ...

    async def record_notify(self, run_id: str, ref: MessageRef) -> None:
        """Remember the notify message of a run (when no other write carried it)."""
        ...

    async def claim_waiting(
        self, run_id: str, step_id: str, payload: Mapping[str, Any], lease: Lease
    ) -> Claim | None:
        """waiting (or queued) → running if `step_id` is the waiting step; the payload is kept
        with the run until the step is recorded (a crash meanwhile replays it)."""
        ...

    async def claim_due(self, now: datetime, lease: Lease, limit: int) -> list[Claim]:
        """Claim runs to drive: queued ones, waiting ones whose wake_at passed (payload
        TIMER) and running ones whose lease expired (a crashed process)."""
        ...

    async def history(
        self, team_id: str, flow_id: str, limit: int, started_by: str | None = None
    ) -> list[RunRecord]:
        """The last runs of a flow, newest first (only `started_by`'s if given)."""
        ...

    async def cancel_flow_runs(
        self, team_id: str, flow_id: str, request: CancelRequest
    ) -> CancelResult:
        """Every unfinished run of the flow: queued, waiting, or running under an expired
        lease → `cancelled` with `request.error` (a compare-and-set on what was read);
        running under a live lease → flagged `cancel_requested`."""
        ...

    async def end_cancelled(
        self,
        run_id: str,
        lease: Lease,
        finished_at: datetime,
        error_step: str | None,
        result: StepResult | None,
        extra: Mapping[str, Any],
    ) -> CancelRequest | None:
        """After a refused write: if the run is still ours and flagged, record `result`
        (the step that just ended, if any) and end it `cancelled`; return the request.
        None: the lease is lost."""
        ...


RunEvent = Literal["started", "progress", "waiting", "resumed", "finished", "cancelled"]


class RunNotifier(Protocol):
    """Tells Slack how a run goes: one message per run in the flow's notify channel
    (posted once, then updated), and the result to whoever started it."""

    async def run_event(self, run: RunRecord, event: RunEvent) -> MessageRef | None:
        """Post or update the run's notify message; return its ref (None: no message)."""
        ...


class NullNotifier:
    async def run_event(self, run: RunRecord, event: RunEvent) -> MessageRef | None:
        return run.notify_message


class RunRefused(Exception):
    """The flow can't run (disabled, no steps)."""


#: Called with each run once it is cancelled (its approvals are cancelled this way).
CancelListener = Callable[[RunRecord, CancelRequest], Awaitable[None]]


# ------------------------------------------------------------------ templates

_NO_ATTRIBUTE = re.compile(r"^'(?:dict|list) object' has no attribute '(?P<name>[^']+)'$")


def _sources(source: Any) -> list[str]:
    if isinstance(source, str):
        return [source]
    if isinstance(source, Mapping):
        return [text for value in source.values() for text in _sources(value)]
    if isinstance(source, (list, tuple)):
        return [text for value in source for text in _sources(value)]
    return []


def explain_template_error(source: Any, message: str) -> str:
    """Name the object in jinja's "'dict object' has no attribute 'amout'": the template
    says `inputs.amout`, so the message becomes "'inputs' has no attribute 'amout'"."""
    match = _NO_ATTRIBUTE.match(message)
    if match is None:
        return message
    name = re.escape(match.group("name"))
    pattern = re.compile(r"(?<![\w.])(?P<path>[A-Za-z_]\w*(?:\.[A-Za-z_]\w*)*)\." + name + r"\b")
    for text in _sources(source):
        found = pattern.search(text)
        if found:
            return f"'{found.group('path')}' has no attribute '{match.group('name')}'"
    return message


def template_data(run: RunRecord) -> dict[str, Any]:
    """The names templates see: inputs, trigger, steps, run, vars (plain data)."""
    steps: dict[str, Any] = {}
    for step_id, result in run.steps.items():
        steps[step_id] = {
            **result.output,
            "status": result.status,
            "error": result.error,
        }
    trigger = {**run.trigger.data, "type": run.trigger.type, "user": run.trigger.user}
    return {
        "inputs": dict(run.inputs),
        "trigger": trigger,
        "steps": steps,
        "run": {
            "id": run.id,
            "flow": run.flow_name,
            "flow_name": run.flow_name,
            "flow_id": run.flow_id,
            "flow_version": run.flow_version,
            "started_by": run.started_by or "",
            "started_at": run.started_at.isoformat() if run.started_at else "",
            "trigger": run.trigger.type,
            "team_id": run.team_id,
        },
        "vars": dict(run.vars),
    }


# ------------------------------------------------------------------ the runner


class _LeaseLost(Exception):
    pass


class _Failure(Exception):
    """A step failed: `error` is the run's error, naming the step (and field)."""

    def __init__(self, step_id: str, error: str, result: StepResult) -> None:
        super().__init__(error)
        self.step_id = step_id
        self.error = error
        self.result = result


class _Parked(Exception):
    pass


class _Stopping(Exception):
    pass


class _Cancelled(Exception):
    """The run was cancelled at a step boundary (already recorded and told)."""


def _default_describe(exc: BaseException) -> str:
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__


def default_owner() -> str:
    return f"{os.getpid()}-{secrets.token_hex(4)}"


@dataclass
class _Drive:
    """In-memory state of a run being driven by this process."""

    run: RunRecord
    lease: Lease
    wake: tuple[str, dict[str, Any]] | None
    cancel: CancelRequest | None = None
    dirty_vars: bool = False
    dirty_notify: bool = False
    last_progress: float = 0.0


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
        lease_time: timedelta = timedelta(seconds=30),
        poll_interval: float = 0.5,
        stop_grace: float = 5.0,
        progress_interval: float = 1.0,
        resume_patience: float = 30.0,
        owner: str | None = None,
    ) -> None:
        self.store = store
        self.executors = executors
        self.clock = clock
        self.ids = ids
        self.notifier: RunNotifier = notifier or NullNotifier()
        self.describe_error = describe_error or _default_describe
        self.lease_time = lease_time
        self.poll_interval = poll_interval
        self.stop_grace = stop_grace
        self.progress_interval = progress_interval
        self.resume_patience = resume_patience
        self.owner = owner or default_owner()
        self._tasks: dict[str, asyncio.Task[None]] = {}
        self._waker: asyncio.Task[None] | None = None
        self._stopping = False
        self._kick = asyncio.Event()
        self._last_renew = 0.0
        self.on_cancelled: list[CancelListener] = []

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
    ) -> RunRecord:
        """Record a new run of `flow` and drive it in a task the runner
        owns. Returns once the run is stored. RunRefused if the flow is disabled."""
        if not flow.enabled:
            raise RunRefused(f"the flow {flow.name} is disabled")
        now = self.clock.now()
        run = RunRecord(
            id=self.ids.new_id("R"),
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
        if self._stopping:
            await self.store.insert(run, None)
            return run
        lease = self.lease()
        await self.store.insert(run, lease)
        self._spawn(_Drive(run=run.model_copy(deep=True), lease=lease, wake=None), "started")
        return run

    async def resume(self, run_id: str, step_id: str, payload: Mapping[str, Any]) -> bool:
        """Wake a parked step with `payload` (e.g. an approval's outcome). True if this
        call resumed the run; False if it was not waiting at that step (already resumed,
        finished, unknown). A run still on its way to parking there is waited for."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.resume_patience
        while True:
            claim = await self.store.claim_waiting(run_id, step_id, dict(payload), self.lease())
            if claim is not None:
                if self._stopping:
                    await self.store.requeue(run_id, self.owner)
                    return True
                self._spawn(self._drive_from_claim(claim), "resumed")
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
        The error says `reason` and `by` whom ("the flow was deleted by <@U…>"). The
        `on_cancelled` listeners (approvals) run before this returns; the run's notify
        message and its starter are told in the background. Returns how many runs were
        cancelled or asked to stop."""
        request = CancelRequest(reason=reason, by=by, at=self.clock.now())
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
        return _Drive(run=claim.run, lease=self.lease(), wake=claim.resume, cancel=claim.cancel)

    def _spawn(self, drive: _Drive, event: RunEvent) -> None:
        previous = self._tasks.get(drive.run.id)
        self._track(drive.run.id, self._drive_after(previous, drive, event))

    def _track(self, run_id: str, work: Coroutine[Any, Any, None]) -> None:
        """Run `work` as the run's task (`wait_for`, `idle` and `stop` see it)."""
        task = asyncio.create_task(work, name=f"run-{run_id}")
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
        try:
            ref = await self.notifier.run_event(drive.run, event)
        except Exception:
            log.exception("run %s: notification (%s) failed", drive.run.id, event)
            return
        if ref is not None and ref != drive.run.notify_message:
            drive.run.notify_message = ref
            drive.dirty_notify = True

    def _extra(self, drive: _Drive) -> dict[str, Any]:
        extra: dict[str, Any] = {}
        if drive.dirty_vars:
            extra["vars"] = dict(drive.run.vars)
        if drive.dirty_notify and drive.run.notify_message is not None:
            extra["notify_message"] = drive.run.notify_message.model_dump()
        return extra

    def _clean(self, drive: _Drive) -> None:
        drive.dirty_vars = drive.dirty_notify = False

    async def _drive_after(
        self, previous: asyncio.Task[None] | None, drive: _Drive, event: RunEvent
    ) -> None:
        # A run woken while its previous drive is still wrapping up (a parked run telling
        # Slack it waits) goes on once that drive has ended.
        if previous is not None:
            await asyncio.gather(previous, return_exceptions=True)
        await self._drive(drive, event)

    async def _drive(self, drive: _Drive, event: RunEvent) -> None:
        run = drive.run
        if drive.cancel is not None:
            # Claimed while asked to stop (its driver died or was shut down): end it now.
            if not await self._cancelled_at_boundary(drive, None):
                log.warning("run %s: lease lost before its cancellation was recorded", run.id)
            return
        await self._notify(drive, event)
        try:
            await self._run_steps(drive, run.definition.steps)
        except _Parked:
            await self._notify(drive, "waiting")
            return
        except (_LeaseLost, _Stopping, _Cancelled):
            return
        except _Failure as failure:
            await self._finish(drive, "failed", failure)
            return
        await self._finish(drive, "succeeded", None)

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
        if result is not None:
            run.steps[result.step_id] = result
        ok = await self.store.finish(
            run.id,
            drive.lease,
            status,
            now,
            error,
            run.error_step,
            result,
            self._extra(drive),
        )
        if not ok:
            if not await self._cancelled_at_boundary(drive, result):
                log.warning("run %s: lease lost before its end was recorded", run.id)
            return
        self._clean(drive)
        await self._notify(drive, "finished")
        if drive.dirty_notify and run.notify_message is not None:
            # The message was posted only now (no earlier write carried it): record it.
            await self.store.record_notify(run.id, run.notify_message)

    async def _run_steps(self, drive: _Drive, steps: Sequence[Any]) -> None:
        for step in steps:
            await self._run_step(drive, step)

    async def _run_step(self, drive: _Drive, step: Any) -> None:
        run = drive.run
        step_id: str = step.id
        step_type: str = step.type
        recorded = run.steps.get(step_id)
        executor = self.executors.get(step_type)
        if recorded is not None and recorded.status in ("succeeded", "skipped"):
            if executor is not None and isinstance(executor, BranchingExecutor):
                await self._run_steps(drive, executor.children(step, recorded.output))
            return
        if self._stopping:
            raise _Stopping
        started_at = recorded.started_at if recorded and recorded.started_at else self.clock.now()
        ctx = StepContext(run, step_id, self.clock)
        vars_before = dict(run.vars)
        try:
            if executor is None:
                raise StepFailed(f"no executor for step type {step_type!r}")
            if recorded is not None and recorded.status == "waiting":
                if drive.wake is None or drive.wake[0] != step_id:
                    # Woken without news for this step: wait on as before.
                    await self._park(
                        drive, recorded, Park(run.wake_at, run.waiting_for, recorded.output)
                    )
                    raise _Parked
                payload = drive.wake[1]
                drive.wake = None
                outcome = await executor.resume(step, ctx, payload)
            else:
                outcome = await executor.execute(step, ctx)
        except (_Parked, _LeaseLost, _Cancelled, asyncio.CancelledError):
            raise
        except StepFailed as exc:
            raise self._failure(step_id, step_type, started_at, exc.message, exc.field) from None
        except Exception as exc:
            log.info("run %s: step %s failed", run.id, step_id, exc_info=True)
            raise self._failure(step_id, step_type, started_at, self.describe_error(exc)) from None
        if run.vars != vars_before:
            drive.dirty_vars = True
        if isinstance(outcome, Park):
            result = StepResult(
                step_id=step_id,
                type=step_type,
                status="waiting",
                output=dict(outcome.output),
                started_at=started_at,
            )
            await self._park(drive, result, outcome)
            raise _Parked
        result = StepResult(
            step_id=step_id,
            type=step_type,
            status="succeeded",
            output=dict(outcome.output),
            started_at=started_at,
            finished_at=self.clock.now(),
        )
        run.steps[step_id] = result
        drive.lease = self.lease()
        if not await self.store.record_step(run.id, drive.lease, result, self._extra(drive)):
            if await self._cancelled_at_boundary(drive, result):
                raise _Cancelled
            log.warning("run %s: lease lost at step %s; another process drives it", run.id, step_id)
            raise _LeaseLost
        self._clean(drive)
        await self._notify(drive, "progress")
        if isinstance(executor, BranchingExecutor):
            await self._run_steps(drive, executor.children(step, result.output))

    async def _park(self, drive: _Drive, result: StepResult, park: Park) -> None:
        run = drive.run
        run.steps[result.step_id] = result
        run.status = "waiting"
        run.wake_at = park.wake_at
        run.waiting_for = park.waiting_for
        ok = await self.store.park(
            run.id, drive.lease, result, park.wake_at, park.waiting_for, self._extra(drive)
        )
        if not ok:
            if await self._cancelled_at_boundary(drive, result):
                raise _Cancelled
            raise _LeaseLost
        self._clean(drive)
        if park.wake_at is not None:
            self._schedule_kick(park.wake_at)

    async def _cancelled_at_boundary(self, drive: _Drive, result: StepResult | None) -> bool:
        """A write at a step boundary was refused: if the run was asked to stop, end it
        `cancelled` (keeping `result`, the step that just ended) and tell; True. False:
        the lease is lost (another process drives the run)."""
        run = drive.run
        now = self.clock.now()
        stopped_at = result.step_id if result and result.status != "succeeded" else None
        request = await self.store.end_cancelled(
            run.id, drive.lease, now, stopped_at, result, self._extra(drive)
        )
        if request is None:
            return False
        if result is not None:
            run.steps[result.step_id] = result
        run.status = "cancelled"
        run.finished_at = now
        run.error = request.error
        run.error_step = stopped_at
        run.wake_at = None
        run.waiting_for = None
        self._clean(drive)
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
        where = f"step {step_id}, field {field_name}" if field_name else f"step {step_id}"
        result = StepResult(
            step_id=step_id,
            type=step_type,
            status="failed",
            error=f"field {field_name}: {message}" if field_name else message,
            started_at=started_at,
            finished_at=self.clock.now(),
        )
        return _Failure(step_id, f"{where}: {message}", result)
