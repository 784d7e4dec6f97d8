"""Approvals (SPEC §7): a run parks at an `approval` step until its approvers decide.

- `ApprovalRecord` is the stored approval: who may answer (expanded when the request is
  made), the mode, the responses, the outcome and the Slack messages carrying its buttons.
- `ApprovalStore` is its storage port (MongoDB adapter in `storage.approvals_repo`). Every
  response is a compare-and-set on (status "pending", responder not yet present, version),
  so double clicks, Slack retries and racing approvers give exactly one outcome.
- `ApprovalNotifier` is how approvals reach Slack (implemented in `handlers.approvals`).
- `ApprovalService` records responses, expires and reminds, and resumes the run.
- `ApprovalStepExecutor` is the runner's executor for `approval` steps: it makes the
  request and parks the run with wake_at = the reminder or the timeout, so both survive
  restarts through the runner's durable wake-ups.

Options and outcome: the buttons are the step's `options` (labels; default Approve /
Reject). Choosing the approve option (`approve_option`, default the first) means
"approved", any other "rejected"; the run sees the outcome ("approved" / "rejected" /
"expired") and, in `option`, the label that decided.

Cancelling: when its run is cancelled (the flow was deleted), a pending approval becomes
`cancelled` (a compare-and-set from pending, so a decision that got there first stands):
its messages say so without buttons, later clicks are told, pending lists drop it.

Modes: `first_response`: the first response decides. `everyone`: every approver must
choose the approve option; `quorum` (min N): N must. Both decide "rejected" as soon as
that can no longer happen (for `everyone`, at the first other answer).
"""

from __future__ import annotations

import asyncio
import logging
import re
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from flows.definition import ApprovalStep
from flows.ports import Clock, Directory, IdGenerator
from flows.records import RunRecord
from flows.runner import CancelRequest, Done, Outcome, Park, StepContext, StepFailed, is_timer

log = logging.getLogger(__name__)

ApprovalMode = Literal["first_response", "everyone", "quorum"]
ApprovalStatus = Literal["pending", "decided", "cancelled"]

APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
CANCELLED = "cancelled"
WAITING_PREFIX = "approval:"
COMMENT_LIMIT = 2000


class ApprovalError(Exception):
    """The approval step cannot be requested as written (no approvers, bad quorum…)."""


DEFAULT_OPTIONS: tuple[str, str] = ("Approve", "Reject")


class ApprovalResponse(BaseModel):
    user: str
    # The option label chosen.
    response: str
    comment: str | None = None
    at: datetime


class ApprovalMessage(BaseModel):
    """A Slack message carrying the buttons: a DM to `approver`, or a channel post."""

    channel: str
    ts: str
    approver: str | None = None


class ApprovalRecord(BaseModel):
    id: str
    team_id: str
    run_id: str
    step_id: str
    flow_id: str = ""
    flow_name: str = ""
    requester: str | None = None
    title: str
    details: str = ""
    mode: ApprovalMode = "first_response"
    min: int = 1
    # As written in the step (users, groups, channels), and expanded to users.
    principals: list[str] = Field(default_factory=list)
    approvers: list[str] = Field(default_factory=list)
    options: list[str] = Field(default_factory=lambda: list(DEFAULT_OPTIONS))
    approve_option: str = DEFAULT_OPTIONS[0]
    allow_comment: bool = False
    channel: str | None = None
    notify_channel: str | None = None
    status: ApprovalStatus = "pending"
    # "approved", "rejected", "expired", or "cancelled" (status cancelled).
    outcome: str | None = None
    # The label of the deciding response (None when expired).
    option: str | None = None
    responder: str | None = None
    comment: str | None = None
    # Why and by whom a cancelled approval was cancelled ("the flow was deleted", U…).
    cancel_reason: str | None = None
    cancelled_by: str | None = None
    responses: list[ApprovalResponse] = Field(default_factory=list)
    messages: list[ApprovalMessage] = Field(default_factory=list)
    # The buttons were posted (a re-executed step does not post them twice).
    requested: bool = False
    created_at: datetime
    decided_at: datetime | None = None
    timeout_at: datetime | None = None
    reminder_at: datetime | None = None
    reminded: bool = False
    # The run was given the outcome (a sweep at start-up resumes the others).
    resumed: bool = False
    version: int = 0

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    @property
    def cancelled(self) -> bool:
        return self.status == "cancelled"

    @property
    def required(self) -> int:
        """How many positive responses approve."""
        if self.mode == "everyone":
            return len(self.approvers)
        if self.mode == "quorum":
            return self.min
        return 1

    @property
    def negative(self) -> bool:
        """Decided, and not approved (rejected or expired)."""
        return self.status == "decided" and self.outcome != APPROVED

    def outcome_of(self, option: str) -> str:
        return APPROVED if option == self.approve_option else REJECTED

    def has_option(self, option: str) -> bool:
        return option in self.options

    def response_of(self, user: str) -> ApprovalResponse | None:
        return next((r for r in self.responses if r.user == user), None)

    def awaiting(self) -> list[str]:
        """Approvers who have not answered yet."""
        answered = {r.user for r in self.responses}
        return [u for u in self.approvers if u not in answered]

    def next_wake(self) -> datetime | None:
        if self.reminder_at is not None and not self.reminded:
            if self.timeout_at is None or self.reminder_at < self.timeout_at:
                return self.reminder_at
        return self.timeout_at

    def output(self) -> dict[str, Any]:
        """What the run sees as `steps.<id>`."""
        return {
            "approval_id": self.id,
            "outcome": self.outcome,
            "option": self.option,
            "responder": self.responder,
            "comment": self.comment,
            "responses": [
                {
                    "user": r.user,
                    "response": r.response,
                    "comment": r.comment,
                    "at": r.at.isoformat(),
                }
                for r in self.responses
            ],
            "approvers": list(self.approvers),
        }


@dataclass(frozen=True)
class Decision:
    outcome: str
    option: str | None
    responder: str | None
    comment: str | None
    at: datetime

    @classmethod
    def by(cls, record: ApprovalRecord, response: ApprovalResponse) -> Decision:
        outcome = record.outcome_of(response.response)
        return cls(outcome, response.response, response.user, response.comment, response.at)


def evaluate(record: ApprovalRecord, responses: Sequence[ApprovalResponse]) -> Decision | None:
    """The decision these responses (in order) reach, or None while still open.

    Deterministic in the list, so two writers racing on the same responses agree."""
    if not responses:
        return None
    if record.mode == "first_response":
        return Decision.by(record, responses[0])
    need, total, yes = record.required, len(record.approvers), 0
    for index, response in enumerate(responses):
        if response.response == record.approve_option:
            yes += 1
        # An approving answer decides "approved" at the threshold; any other answer
        # decides "rejected" once the threshold is out of reach.
        if yes >= need or yes + (total - index - 1) < need:
            return Decision.by(record, response)
    return None


# ------------------------------------------------------------------ ports


class ApprovalStore(Protocol):
    async def create(self, record: ApprovalRecord) -> ApprovalRecord:
        """Insert, or return the approval already made for (run_id, step_id)."""
        ...

    async def get(self, approval_id: str) -> ApprovalRecord | None: ...

    async def get_for_step(self, run_id: str, step_id: str) -> ApprovalRecord | None: ...

    async def add_response(
        self,
        approval_id: str,
        version: int,
        response: ApprovalResponse,
        decision: Decision | None,
    ) -> ApprovalRecord | None:
        """Compare-and-set: only if still pending at `version`, the responder is an
        approver and has not answered. Returns the updated record, or None."""
        ...

    async def expire(self, approval_id: str, at: datetime) -> ApprovalRecord | None:
        """Compare-and-set pending → decided with outcome "expired"; None if not pending."""
        ...

    async def cancel(
        self, approval_id: str, at: datetime, reason: str, by: str | None
    ) -> ApprovalRecord | None:
        """Compare-and-set pending → cancelled; None if not pending."""
        ...

    async def pending_of_run(self, run_id: str) -> list[ApprovalRecord]:
        """The run's approvals still pending."""
        ...

    async def set_messages(self, approval_id: str, messages: Sequence[ApprovalMessage]) -> None:
        """Record the posted messages and mark the approval requested."""
        ...

    async def mark_reminded(self, approval_id: str) -> bool:
        """True for the one caller that flips `reminded` (while still pending)."""
        ...

    async def mark_resumed(self, approval_id: str) -> None: ...

    async def pending_for(self, team_id: str, user: str) -> list[ApprovalRecord]:
        """Pending approvals where `user` is an approver who has not answered."""
        ...

    async def unresumed(self) -> list[ApprovalRecord]:
        """Decided approvals whose run has not been given the outcome yet."""
        ...


class ApprovalNotifier(Protocol):
    """How approvals reach people. Implemented with Block Kit cards in handlers."""

    async def send_request(self, record: ApprovalRecord) -> list[ApprovalMessage]:
        """Post the buttons: a DM to each approver, or one post in `record.channel`."""
        ...

    async def show_progress(self, record: ApprovalRecord) -> None:
        """A response was recorded without deciding: refresh the messages."""
        ...

    async def show_outcome(self, record: ApprovalRecord) -> None:
        """Decided: every message shows the outcome, who decided, the comment; no buttons.
        Cancelled: every message says so and why; no buttons."""
        ...

    async def remind(self, record: ApprovalRecord, users: Sequence[str]) -> None: ...

    async def tell_requester(self, record: ApprovalRecord) -> None:
        """The requester hears of a negative outcome (rejected, expired, custom)."""
        ...

    async def notify(self, record: ApprovalRecord, event: Literal["requested", "decided"]) -> None:
        """A notice in the flow's notify channel."""
        ...

    async def bot_user(self) -> str | None:
        """The bot's own user id: never an approver (it is a member of channels)."""
        ...

    async def refresh_lists(self, record: ApprovalRecord) -> None:
        """The approvers' pending lists changed (the App Home's Pending approvals)."""
        ...


class RunResumer(Protocol):
    """The runner's external wake-up (issue 4): give a parked step its result."""

    async def resume(self, run_id: str, step_id: str, payload: dict[str, Any]) -> Any: ...


# ------------------------------------------------------------------ principals

_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_GROUP = re.compile(r"^<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>$")
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")
_BARE = re.compile(r"^[UWSCG][A-Z0-9]{2,}$")
_TOKEN = re.compile(r"<[^>]*>|[^\s,<>]+")


def parse_principal(text: str) -> str | None:
    """`<@U1|x>` → U1, `<!subteam^S1|x>` → S1, `<#C1|x>` → C1, bare ids as they are."""
    text = text.strip()
    for pattern in (_USER, _GROUP, _CHANNEL):
        match = pattern.match(text)
        if match:
            return match.group(1)
    return text if _BARE.match(text) else None


def split_principals(values: Iterable[str]) -> list[str]:
    """Rendered approver entries may hold several mentions separated by spaces or commas."""
    out: list[str] = []
    for value in values:
        out.extend(_TOKEN.findall(value))
    return out


async def expand_approvers(
    team_id: str, principals: Sequence[str], directory: Directory, exclude: Iterable[str] = ()
) -> list[str]:
    """Users, user groups and channels → approver user ids (in order, without repeats)."""
    skip = set(exclude)
    users: list[str] = []
    for raw in principals:
        principal = parse_principal(raw)
        if principal is None:
            raise ApprovalError(f"approver {raw!r} is not a user, group or channel mention")
        if principal.startswith("S"):
            members: Iterable[str] = sorted(await directory.usergroup_members(team_id, principal))
        elif principal.startswith(("C", "G")):
            members = sorted(await directory.channel_members(team_id, principal))
        else:
            members = [principal]
        for user in members:
            if user not in skip and user not in users:
                users.append(user)
    return users


# ------------------------------------------------------------------ the service


@dataclass
class ApprovalRequest:
    """An approval step with its templates rendered (the executor builds it)."""

    team_id: str
    run_id: str
    step_id: str
    title: str
    approvers: list[str]
    flow_id: str = ""
    flow_name: str = ""
    requester: str | None = None
    details: str = ""
    mode: ApprovalMode = "first_response"
    min: int | None = None
    options: list[str] = field(default_factory=lambda: list(DEFAULT_OPTIONS))
    approve_option: str | None = None
    allow_comment: bool = False
    channel: str | None = None
    notify_channel: str | None = None
    timeout: timedelta | None = None
    # How long before the timeout the approvers still waiting are reminded.
    reminder: timedelta | None = None


RespondKind = Literal[
    "recorded",  # counted, not decided yet
    "decided",  # this response decided the approval
    "already_decided",
    "cancelled",  # the run was cancelled (its flow deleted)
    "already_responded",
    "not_approver",
    "not_found",
    "unknown_option",
]


@dataclass(frozen=True)
class RespondResult:
    kind: RespondKind
    record: ApprovalRecord | None = None

    @property
    def counted(self) -> bool:
        return self.kind in ("recorded", "decided")


class ApprovalService:
    """Approvals' use cases; also a `Service` (start: resume runs a crash left waiting)."""

    def __init__(
        self,
        store: ApprovalStore,
        notifier: ApprovalNotifier,
        directory: Directory,
        clock: Clock,
        ids: IdGenerator,
        resumer: RunResumer | None = None,
    ) -> None:
        self.store = store
        self.notifier = notifier
        self.directory = directory
        self.clock = clock
        self.ids = ids
        self.resumer = resumer
        # How long `stop` waits for decisions still being carried out (messages, resume).
        self.stop_grace = 10.0
        self._tasks: set[asyncio.Task[None]] = set()

    def attach_runner(self, resumer: RunResumer) -> None:
        self.resumer = resumer

    # --- Service

    async def start(self) -> None:
        self._spawn(self._resume_unresumed())

    async def stop(self) -> None:
        """Let decisions being carried out finish (within `stop_grace`), then cancel."""
        tasks = list(self._tasks)
        if not tasks:
            return
        _done, pending = await asyncio.wait(tasks, timeout=self.stop_grace)
        for task in pending:
            task.cancel()
        await asyncio.gather(*pending, return_exceptions=True)

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def wait_idle(self) -> None:
        """Wait until decisions being carried out are done (tests, shutdown)."""
        while self._tasks:
            await asyncio.gather(*list(self._tasks), return_exceptions=True)

    async def _resume_unresumed(self) -> None:
        """A crash between a decision and the run's resumption: finish the job at start
        (messages show the outcome again; notices are not sent twice)."""
        try:
            for record in await self.store.unresumed():
                await self._quietly(self.notifier.show_outcome(record), "outcome update")
                await self._resume_run(record)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("resuming decided approvals failed")

    # --- requests

    async def request(self, req: ApprovalRequest) -> ApprovalRecord:
        """Create the approval for (run, step) once and post its buttons once."""
        existing = await self.store.get_for_step(req.run_id, req.step_id)
        if existing is not None:
            return await self._post_if_needed(existing)
        bot_user = await self.notifier.bot_user()
        principals = split_principals(req.approvers)
        approvers = await expand_approvers(
            req.team_id, principals, self.directory, exclude=[bot_user] if bot_user else []
        )
        if not approvers:
            raise ApprovalError("the approval has no approvers (empty groups or channels?)")
        minimum = 1
        if req.mode == "quorum":
            minimum = req.min or 1
            if not 1 <= minimum <= len(approvers):
                raise ApprovalError(
                    f"quorum of {minimum} is impossible with {len(approvers)} approver(s)"
                )
        options = [o.strip() for o in req.options or DEFAULT_OPTIONS if o.strip()]
        if len(options) < 2 or len(set(options)) != len(options):
            raise ApprovalError("an approval needs at least two distinct options")
        approve_option = req.approve_option or options[0]
        if approve_option not in options:
            raise ApprovalError(f"approve option {approve_option!r} is not one of the options")
        now = self.clock.now()
        timeout_at = now + req.timeout if req.timeout else None
        reminder_at: datetime | None = None
        if req.reminder is not None:
            reminder_at = timeout_at - req.reminder if timeout_at else now + req.reminder
            if reminder_at <= now:
                reminder_at = None
        channel = None
        if req.channel:
            channel = await self.directory.resolve_channel(req.team_id, req.channel)
        notify_channel = None
        if req.notify_channel:
            notify_channel = await self.directory.resolve_channel(req.team_id, req.notify_channel)
        record = ApprovalRecord(
            id=self.ids.new_id("A"),
            team_id=req.team_id,
            run_id=req.run_id,
            step_id=req.step_id,
            flow_id=req.flow_id,
            flow_name=req.flow_name,
            requester=req.requester,
            title=req.title,
            details=req.details,
            mode=req.mode,
            min=minimum,
            principals=principals,
            approvers=approvers,
            options=options,
            approve_option=approve_option,
            allow_comment=req.allow_comment,
            channel=channel,
            notify_channel=notify_channel,
            created_at=now,
            timeout_at=timeout_at,
            reminder_at=reminder_at,
        )
        record = await self.store.create(record)
        return await self._post_if_needed(record)

    async def _post_if_needed(self, record: ApprovalRecord) -> ApprovalRecord:
        if record.requested or not record.pending:
            return record
        messages = await self.notifier.send_request(record)
        await self.store.set_messages(record.id, messages)
        await self._quietly(self.notifier.notify(record, "requested"), "requested notice")
        await self._quietly(self.notifier.refresh_lists(record), "pending lists")
        fresh = await self.store.get(record.id)
        return fresh or record.model_copy(update={"messages": messages, "requested": True})

    # --- responses

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        return await self.store.get(approval_id)

    async def pending_for(self, team_id: str, user: str) -> list[ApprovalRecord]:
        return await self.store.pending_for(team_id, user)

    async def check(self, approval_id: str, user: str, option: str | None = None) -> RespondResult:
        """Would this user's response count now? (Before opening the comment modal.)"""
        record = await self.store.get(approval_id)
        return self._refusal(record, user, option) or RespondResult("recorded", record)

    def _refusal(
        self, record: ApprovalRecord | None, user: str, option: str | None
    ) -> RespondResult | None:
        if record is None:
            return RespondResult("not_found")
        if user not in record.approvers:
            return RespondResult("not_approver", record)
        if record.cancelled:
            return RespondResult("cancelled", record)
        if not record.pending:
            return RespondResult("already_decided", record)
        if record.response_of(user) is not None:
            return RespondResult("already_responded", record)
        if option is not None and not record.has_option(option):
            return RespondResult("unknown_option", record)
        return None

    async def respond(
        self, approval_id: str, user: str, option: str, comment: str | None = None
    ) -> RespondResult:
        """Record one response exactly once; decide when the mode says so."""
        comment = (comment or "").strip()[:COMMENT_LIMIT] or None
        # Each failed compare-and-set means another response landed; bounded retries.
        for _ in range(1000):
            record = await self.store.get(approval_id)
            refusal = self._refusal(record, user, option)
            if refusal is not None:
                return refusal
            assert record is not None
            response = ApprovalResponse(user=user, response=option, comment=comment, at=self.now())
            decision = evaluate(record, [*record.responses, response])
            updated = await self.store.add_response(record.id, record.version, response, decision)
            if updated is None:
                continue
            if decision is None:
                await self._quietly(self.notifier.show_progress(updated), "progress update")
                return RespondResult("recorded", updated)
            # The clicker's answer need not wait for the messages and the run.
            self._spawn(self._conclude(updated))
            return RespondResult("decided", updated)
        raise RuntimeError(f"approval {approval_id}: too much contention")  # pragma: no cover

    def now(self) -> datetime:
        return self.clock.now()

    async def _conclude(self, record: ApprovalRecord) -> None:
        await self._after_decision(record)
        await self._resume_run(record)
        await self._quietly(self.notifier.refresh_lists(record), "pending lists")

    async def _after_decision(self, record: ApprovalRecord) -> None:
        await self._quietly(self.notifier.show_outcome(record), "outcome update")
        await self._quietly(self.notifier.notify(record, "decided"), "decided notice")
        if record.negative and record.requester:
            await self._quietly(self.notifier.tell_requester(record), "requester notice")

    async def _resume_run(self, record: ApprovalRecord) -> None:
        if self.resumer is None:
            log.warning("approval %s decided but no runner is attached", record.id)
            return
        try:
            await self.resumer.resume(record.run_id, record.step_id, record.output())
        except Exception:
            log.exception("resuming run %s after approval %s failed", record.run_id, record.id)
            return
        await self.store.mark_resumed(record.id)

    async def _quietly(self, coro: Any, what: str) -> None:
        try:
            await coro
        except Exception:
            log.exception("approval %s failed", what)

    # --- cancelling

    async def on_run_cancelled(self, run: RunRecord, request: CancelRequest) -> None:
        """The run was cancelled (a `flows.runner.CancelListener`): its pending approvals
        are cancelled now, so that no click counts any more; their messages and the
        approvers' pending lists are updated in the background."""
        for record in await self.store.pending_of_run(run.id):
            cancelled = await self.store.cancel(record.id, self.now(), request.reason, request.by)
            if cancelled is not None:  # else a decision got there first: it stands
                self._spawn(self._conclude_cancelled(cancelled))

    async def _conclude_cancelled(self, record: ApprovalRecord) -> None:
        await self._quietly(self.notifier.show_outcome(record), "cancelled update")
        await self._quietly(self.notifier.refresh_lists(record), "pending lists")

    # --- timers

    async def on_timer(self, run_id: str, step_id: str) -> ApprovalRecord | None:
        """A timer wake-up of the parked step: expire if due, remind if due.

        Returns the record (decided or still pending, with its next wake-up), or None if
        there is no approval for this step."""
        record = await self.store.get_for_step(run_id, step_id)
        if record is None or not record.pending:
            return record
        now = self.now()
        if record.timeout_at is not None and now >= record.timeout_at:
            expired = await self.store.expire(record.id, now)
            if expired is None:  # a response decided it meanwhile
                return await self.store.get(record.id)
            await self._after_decision(expired)
            await self._quietly(self.notifier.refresh_lists(expired), "pending lists")
            return expired
        if record.reminder_at is not None and not record.reminded and now >= record.reminder_at:
            if await self.store.mark_reminded(record.id):
                waiting = record.awaiting()
                await self._quietly(self.notifier.remind(record, waiting), "reminder")
            return await self.store.get(record.id)
        return record


# ------------------------------------------------------------------ the step executor


class ApprovalStepExecutor:
    """The runner's executor for `approval` steps (registered as "approval").

    execute: request the approval (once per run and step) and park with wake_at = the
    reminder or the timeout. resume: a decision's payload → Done; a timer → remind and park
    again, or expire (compare-and-set) → Done with outcome "expired"."""

    def __init__(self, service: ApprovalService) -> None:
        self.service = service

    async def execute(self, step: ApprovalStep, ctx: StepContext) -> Outcome:
        run = ctx.run
        approvers = [ctx.render("approvers", a) for a in step.approvers]
        notify = run.definition.notify
        request = ApprovalRequest(
            team_id=run.team_id,
            run_id=run.id,
            step_id=step.id,
            flow_id=run.flow_id,
            flow_name=run.flow_name,
            requester=run.started_by,
            title=ctx.render("title", step.title).strip() or "Approval",
            details=ctx.render("details", step.details).strip(),
            approvers=approvers,
            mode=step.mode,
            min=step.min,
            options=[ctx.render("options", o) for o in step.response_options],
            approve_option=ctx.render("approve_option", step.approve_label),
            allow_comment=step.allow_comment,
            channel=ctx.render("channel", step.channel).strip() or None if step.channel else None,
            notify_channel=ctx.render("notify", notify).strip() or None if notify else None,
            timeout=step.timeout_delta,
            reminder=step.reminder_delta,
        )
        try:
            record = await self.service.request(request)
        except ApprovalError as exc:
            raise StepFailed(str(exc), "approvers") from None
        return await self._settle(record)

    async def resume(
        self, step: ApprovalStep, ctx: StepContext, payload: Mapping[str, Any]
    ) -> Outcome:
        if is_timer(payload):
            record = await self.service.on_timer(ctx.run.id, step.id)
        else:
            record = await self.service.store.get_for_step(ctx.run.id, step.id)
        if record is None:
            raise StepFailed("the approval request of this step is missing")
        return await self._settle(record)

    async def _settle(self, record: ApprovalRecord) -> Outcome:
        if record.cancelled:
            # Only a cancelled run's approval is cancelled: this run is being stopped.
            raise StepFailed(f"the approval was cancelled: {record.cancel_reason or 'cancelled'}")
        if not record.pending:
            await self.service.store.mark_resumed(record.id)
            return Done(record.output())
        return Park(
            wake_at=record.next_wake(),
            waiting_for=WAITING_PREFIX + record.id,
            output={"approval_id": record.id, "approvers": list(record.approvers)},
        )
