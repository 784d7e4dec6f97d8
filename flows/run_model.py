"""What the run engine (`flows.runner.Runner`) works with: executor outcomes and the
executor protocol, the step context templates render in, the storage and notifier ports,
and the engine's errors. Step executors (flows.steps, approvals, connections) and the
storage adapter import these; the engine itself lives in `flows.runner`.
"""

from __future__ import annotations

import re
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Final, Literal, Protocol, TypeGuard, runtime_checkable

from flows.errors import FlowbotError
from flows.ports import Clock
from flows.records import MessageRef, RunRecord, StepResult
from flows.storable import storable
from flows.template_worker import (
    render_text_async,
    render_text_on_loop,
    render_value_async,
    render_value_on_loop,
)
from flows.templating import TemplateError, is_truthy

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
    of the step the error is about, if any. `transient`: trying again may work (HTTP 408,
    429, 5xx, a timeout, a lost connection, Slack's rate limit): a step with `retry` is
    tried again, after at least `retry_after` seconds if given. `output`: what the failed
    step's output shows (an HTTP status)."""

    def __init__(
        self,
        message: str,
        field: str | None = None,
        *,
        transient: bool = False,
        retry_after: float | None = None,
        output: Mapping[str, Any] | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.field = field
        self.transient = transient
        self.retry_after = retry_after
        self.output = dict(output or {})

    def __str__(self) -> str:
        return f"field {self.field}: {self.message}" if self.field else self.message


@dataclass(frozen=True)
class Scope:
    """Where a step runs: at the top (no prefix) or in an iteration of a for_each, whose
    steps are recorded under ``<loop key>[<index>]/<step id>`` (``each[2]/post``, nested:
    ``outer[0]/inner[3]/post``). ``locals`` are ``item`` and ``index`` in a loop body."""

    prefixes: tuple[str, ...] = ()
    locals: Mapping[str, Any] = field(default_factory=dict)

    def key(self, step_id: str) -> str:
        return (self.prefixes[-1] if self.prefixes else "") + step_id

    def iteration(self, loop_key: str, index: int, item: Any) -> Scope:
        prefix = f"{loop_key}[{index}]/"
        return Scope((*self.prefixes, prefix), {"item": item, "index": index})


ROOT = Scope()


class StepContext:
    """What an executor sees of the run: its data, template rendering, its variables.
    `step_id` is the key the step's result is recorded under (its id, in a loop body
    prefixed by the iteration: see `Scope`)."""

    def __init__(self, run: RunRecord, step_id: str, clock: Clock, scope: Scope = ROOT) -> None:
        self.run = run
        self.step_id = step_id
        self.clock = clock
        self.scope = scope
        # The step was running when its run's driver died: its effect may have happened
        # (`flows.post_recovery` looks a post up before sending it again).
        self.in_doubt = False

    @property
    def team_id(self) -> str:
        return self.run.team_id

    @property
    def vars(self) -> dict[str, Any]:
        return self.run.vars

    def now(self) -> datetime:
        return self.clock.now()

    def set_var(self, name: str, value: Any) -> None:
        self.run.vars[name] = storable(value)

    def template_data(self) -> dict[str, Any]:
        return template_data(self.run, self.scope)

    def render(self, field_name: str, source: Any) -> str:
        """Render a text field on the event loop (a short time budget); a template error
        is a StepFailed naming the field. Executors use `text`, which renders off the loop."""
        source = "" if source is None else source if isinstance(source, str) else str(source)
        try:
            return render_text_on_loop(source, self.template_data())
        except TemplateError as exc:
            raise StepFailed(explain_template_error(source, str(exc)), field_name) from None

    def value(self, field_name: str, source: Any) -> Any:
        """Render a value keeping native types (`{{ inputs.amount }}` stays a number), on
        the event loop with a short time budget; executors use `native`."""
        try:
            return render_value_on_loop(source, self.template_data())
        except TemplateError as exc:
            raise StepFailed(explain_template_error(source, str(exc)), field_name) from None

    def truthy(self, field_name: str, source: Any) -> bool:
        return is_truthy(self.value(field_name, source))

    async def text(self, field_name: str, source: Any) -> str:
        """Render a text field in a worker thread with a time budget
        (`flows.template_worker`); a template error is a StepFailed naming the field."""
        source = "" if source is None else source if isinstance(source, str) else str(source)
        try:
            return await render_text_async(source, self.template_data())
        except TemplateError as exc:
            raise StepFailed(explain_template_error(source, str(exc)), field_name) from None

    async def native(self, field_name: str, source: Any) -> Any:
        """`value`, rendered in a worker thread with a time budget."""
        try:
            return await render_value_async(source, self.template_data())
        except TemplateError as exc:
            raise StepFailed(explain_template_error(source, str(exc)), field_name) from None

    async def is_true(self, field_name: str, source: Any) -> bool:
        return is_truthy(await self.native(field_name, source))


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


class Body(Protocol):
    """What a container step (for_each, parallel) gets from the runner to run its steps."""

    async def run(self, steps: Sequence[Any], scope: Scope) -> None:
        """Run steps in `scope` (finished ones are skipped, a waiting one resumes)."""
        ...

    async def group(
        self, jobs: Sequence[Callable[[], Awaitable[None]]], concurrency: int
    ) -> list[str]:
        """Run `jobs` (each runs steps through `run`), `concurrency` at once, in order;
        after a failure no new job starts. Returns when all have ended: the errors of
        the failed ones (each failed step is recorded). If one waits, the whole run
        waits once every job has ended or waits too."""
        ...

    async def record(self, result: StepResult) -> None:
        """Record the container's own progress (a loop's items): it rides along with the
        run's next write, which comes before any body step with an outside effect."""
        ...

    async def attempt(self, steps: Sequence[Any], scope: Scope) -> StepError | None:
        """Run steps like `run`; a step that fails is recorded and its error returned
        (a `try`'s body), instead of failing the run. Waits and cancellations pass."""
        ...


@dataclass(frozen=True)
class StepError:
    """A step that failed in a body run with `Body.attempt`: its key and its error."""

    step: str
    message: str


@runtime_checkable
class ContainerExecutor(Protocol):
    """An executor of a step that contains steps it runs itself (for_each, parallel)."""

    async def run_body(self, step: Any, ctx: StepContext, body: Body) -> Done: ...


_KINDS: dict[tuple[type, type], bool] = {}


def _is(executor: object, kind: type) -> bool:
    # A runtime protocol check costs tens of microseconds and the runner asks several per
    # step: the answer is kept per executor class (executors define their methods there).
    key = (type(executor), kind)
    known = _KINDS.get(key)
    if known is None:
        known = _KINDS[key] = isinstance(executor, kind)
    return known


def is_branching(executor: object) -> TypeGuard[BranchingExecutor]:
    return _is(executor, BranchingExecutor)


def is_container(executor: object) -> TypeGuard[ContainerExecutor]:
    return _is(executor, ContainerExecutor)


class ExecutorRegistry:
    """Step type → executor. Issues plug theirs in with `register` (approval, http…)."""

    def __init__(self, executors: Mapping[str, StepExecutor] | None = None) -> None:
        self._executors: dict[str, StepExecutor] = dict(executors or {})

    def register(self, step_type: str, executor: StepExecutor) -> None:
        self._executors[step_type] = executor

    def get(self, step_type: str) -> StepExecutor | None:
        return self._executors.get(step_type)

    def has_outside_effect(self, step_type: str) -> bool:
        """False for executors that say `no_outside_effect = True` (they only compute or
        park): their result may ride along with the run's next write. Unknown: True."""
        executor = self._executors.get(step_type)
        return executor is None or not getattr(executor, "no_outside_effect", False)

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
    known), when. `words` is that sentence as people read it, set by the `Runner` with its
    `describe_cancel` (worded in cards); the store keeps it with a cancel flag, so the
    process that ends a flagged run records the same words."""

    reason: str
    by: str | None
    at: datetime
    words: str | None = None

    @property
    def error(self) -> str:
        """What the cancelled run records as its error."""
        if self.words is not None:
            return self.words
        return plain_cancel_reason(self)


def plain_cancel_reason(request: CancelRequest) -> str:
    """The reason in plain text (logs, a runner without words from cards)."""
    return f"{request.reason} (by {request.by})" if request.by else request.reason


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
    # How often the run was claimed from a driver that died (a lease that ran out).
    crashes: int = 0
    # Claimed from a driver that died or was interrupted: its next step may be half done.
    after_crash: bool = False


@dataclass(frozen=True)
class ChildCall:
    """A run started by a call_flow step: its id is derived from the calling run and
    step (so a step resumed after a crash finds its child instead of starting another)."""

    parent_run: str
    parent_step: str
    call_depth: int

    @property
    def child_id(self) -> str:
        return f"{self.parent_run}-" + re.sub(r"[^A-Za-z0-9_]+", "-", self.parent_step).strip("-")

    def fields(self) -> dict[str, Any]:
        return {
            "id": self.child_id,
            "parent_run": self.parent_run,
            "parent_step": self.parent_step,
            "call_depth": self.call_depth,
        }


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
        self,
        run_id: str,
        lease: Lease,
        result: StepResult,
        extra: Mapping[str, Any],
        *,
        earlier: Sequence[StepResult] = (),
    ) -> bool:
        """`$set steps.<id>` (and `extra` top-level fields: vars, notify_message) and
        extend the lease. False if the lease is not ours any more or a cancel was
        requested (see `end_cancelled`). Each write also records `earlier`: steps the
        runner has finished since its last write (ones with no outside effect ride along
        with the next write)."""
        ...

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
        *,
        earlier: Sequence[StepResult] = (),
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

    async def cancel_run(self, run_id: str, request: CancelRequest) -> RunRecord | bool:
        """One run, as `cancel_flow_runs` does it: the record if now cancelled, True if
        its driver was asked to stop, False if it had ended."""
        ...

    async def reopen(
        self, run_id: str, failed: Sequence[str], retry: Mapping[str, Any], held: bool
    ) -> RunRecord | None:
        """failed → queued (`/flow retry`): the `failed` step results are removed and
        `retry` is appended to `retries`; `held` waits for a concurrency slot."""
        ...

    async def oldest_held(self, flow_id: str) -> RunRecord | None: ...

    async def held_flows(self, limit: int) -> list[tuple[str, int]]: ...

    async def unhold(self, run_id: str) -> bool: ...

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
        """After a refused write: if the run is still ours and flagged, record `earlier`
        and `result` (the step that just ended, if any) and end it `cancelled`; return the
        request.
        None: the lease is lost."""
        ...

    async def in_progress_of(self, flow_ids: Sequence[str]) -> dict[str, list[RunInProgress]]:
        """The runs of these flows in progress (queued, running or waiting), per flow (flows
        without one are left out), in one read: a schedule's overlap policy for the
        wake-ups due together."""
        ...


@dataclass(frozen=True)
class RunInProgress:
    """What an overlap policy needs of a run in progress (a projected read)."""

    id: str
    flow_id: str
    status: str
    run_key: str | None = None


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


class RunRefused(FlowbotError):
    """The flow can't run now: `why` is "disabled" (the only refusal today)."""

    def __init__(self, flow_name: str, why: str = "disabled") -> None:
        super().__init__(f"the flow {flow_name} is {why}")
        self.flow_name = flow_name
        self.why = why


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


def _step_view(result: StepResult) -> dict[str, Any]:
    """A step's output as templates see it, with `ok`, `error` and `status` (SPEC §12: an
    http_request's `status` stays its HTTP status code)."""
    view = {**result.output, "ok": result.status in ("succeeded", "skipped")}
    if result.error is not None or "error" not in view:
        view["error"] = result.error  # a try's output keeps the error it caught
    if result.type != "http_request":
        view["status"] = result.status
    else:
        view.setdefault("status", None)
    return view


def scoped_steps(run: RunRecord, scope: Scope) -> dict[str, Any]:
    """`steps` as a step in `scope` sees them: the top-level results, and inside a loop
    the results of this iteration (and of the enclosing iterations) under their ids."""
    steps: dict[str, Any] = {}
    for key, result in run.steps.items():
        if "/" not in key:
            steps[key] = _step_view(result)
    for prefix in scope.prefixes:
        size = len(prefix)
        for key, result in run.steps.items():
            if key.startswith(prefix) and "/" not in key[size:]:
                steps[key[size:]] = _step_view(result)
    return steps


def template_data(run: RunRecord, scope: Scope = ROOT) -> dict[str, Any]:
    """The names templates see: inputs, trigger, steps, run, vars (plain data), and in a
    loop body item and index."""
    steps = scoped_steps(run, scope)
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
        **scope.locals,
    }
