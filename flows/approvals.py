"""Approvals' use cases (SPEC §7): a run parks at an `approval` step until its approvers
decide. What an approval is (record, ports, refusals) is in `flows.approval_model`.

- `ApprovalService` makes the request, records responses, expires and reminds, and resumes
  the run.
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
from collections.abc import Coroutine, Iterable, Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any

from flows.approval_model import (
    COMMENT_LIMIT,
    DEFAULT_OPTIONS,
    WAITING_PREFIX,
    ApprovalError,
    ApprovalNotifier,
    ApprovalRecord,
    ApprovalRequest,
    ApprovalResponse,
    ApprovalStore,
    ImpossibleQuorum,
    NoApprovers,
    RespondResult,
    RunResumer,
    TooFewOptions,
    UnknownApproveOption,
    UnknownApprover,
    UnknownChannelName,
    evaluate,
)
from flows.definition import ApprovalStep
from flows.ports import Clock, Directory, IdGenerator
from flows.records import RunRecord
from flows.runner import CancelRequest, Done, Outcome, Park, StepContext, StepFailed, is_timer
from flows.slack_ids import (
    CHANNEL_ID,
    CHANNEL_NAME,
    parse_principal,
    principal_kind,
    split_principals,
)
from flows.workspace_context import acting_for

# This module's API; the record and request types are re-exported for its callers.
__all__ = [
    "ApprovalError",
    "ApprovalRecord",
    "ApprovalRequest",
    "ApprovalService",
    "ApprovalStepExecutor",
    "ApprovalStore",
    "RespondResult",
    "expand_approvers",
    "resolve_principals",
]

log = logging.getLogger(__name__)


# ------------------------------------------------------------------ approvers and options


async def resolve_principal(team_id: str, raw: str, directory: Directory) -> str:
    """A person, group or channel as written (a mention, an id, or a channel's `#name`,
    looked up in the directory) → its id; `UnknownApprover` if it is none of those."""
    principal = parse_principal(raw)
    if principal is not None:
        return principal
    if CHANNEL_NAME.fullmatch(raw.strip()):
        found = await directory.channel_id(team_id, raw.strip()[1:])
        if found and CHANNEL_ID.fullmatch(found):
            return found
        raise UnknownChannelName(raw.strip())
    raise UnknownApprover(raw)


async def resolve_principals(
    team_id: str, principals: Sequence[str], directory: Directory
) -> list[str]:
    """`resolve_principal` for each entry (in order)."""
    return [await resolve_principal(team_id, raw, directory) for raw in principals]


async def expand_approvers(
    team_id: str, principals: Sequence[str], directory: Directory, exclude: Iterable[str] = ()
) -> list[str]:
    """Users, user groups and channels → approver user ids (in order, without repeats)."""
    skip = set(exclude)
    users: list[str] = []
    for raw in principals:
        principal = await resolve_principal(team_id, raw, directory)
        kind = principal_kind(principal)
        if kind == "group":
            members: Iterable[str] = sorted(await directory.usergroup_members(team_id, principal))
        elif kind == "channel":
            members = sorted(await directory.channel_members(team_id, principal))
        else:
            members = [principal]
        for user in members:
            if user not in skip and user not in users:
                users.append(user)
    return users


def _quorum(req: ApprovalRequest, approvers: int) -> int:
    """How many approving answers `quorum` mode needs (1 in the other modes)."""
    if req.mode != "quorum":
        return 1
    minimum = req.min or 1
    if not 1 <= minimum <= approvers:
        raise ImpossibleQuorum(minimum, approvers)
    return minimum


def _options(req: ApprovalRequest) -> tuple[list[str], str]:
    """The button labels and the one that approves."""
    options = [o.strip() for o in req.options or DEFAULT_OPTIONS if o.strip()]
    if len(options) < 2 or len(set(options)) != len(options):
        raise TooFewOptions(options)
    approve_option = req.approve_option or options[0]
    if approve_option not in options:
        raise UnknownApproveOption(approve_option, options)
    return options, approve_option


def deadlines(
    now: datetime, timeout: timedelta | None, reminder: timedelta | None
) -> tuple[datetime | None, datetime | None]:
    """(timeout_at, reminder_at); a reminder that would fall before now is dropped."""
    timeout_at = now + timeout if timeout else None
    if reminder is None:
        return timeout_at, None
    reminder_at = timeout_at - reminder if timeout_at else now + reminder
    return timeout_at, reminder_at if reminder_at > now else None


# ------------------------------------------------------------------ the service


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
                with acting_for(record.team_id):
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
        record = await self.store.create(await self._new_record(req))
        return await self._post_if_needed(record)

    async def _new_record(self, req: ApprovalRequest) -> ApprovalRecord:
        """The approval `req` asks for; an `ApprovalError` if it cannot be made as written."""
        bot_user = await self.notifier.bot_user()
        principals = await resolve_principals(
            req.team_id, split_principals(req.approvers), self.directory
        )
        approvers = await expand_approvers(
            req.team_id, principals, self.directory, exclude=[bot_user] if bot_user else []
        )
        if not approvers:
            raise NoApprovers()
        minimum = _quorum(req, len(approvers))
        options, approve_option = _options(req)
        now = self.clock.now()
        timeout_at, reminder_at = deadlines(now, req.timeout, req.reminder)
        channel = await self._resolve_channel(req.team_id, req.channel)
        notify_channel = await self._resolve_channel(req.team_id, req.notify_channel)
        return ApprovalRecord(
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

    async def _resolve_channel(self, team_id: str, channel: str | None) -> str | None:
        return await self.directory.resolve_channel(team_id, channel) if channel else None

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

    async def check(
        self, approval_id: str, user: str, option: str | None = None, team_id: str | None = None
    ) -> RespondResult:
        """Would this user's response count now? (Before opening the comment modal.)
        `team_id`: the clicker's workspace (from Slack's payload); another's approval is
        not found."""
        record = await self.store.get(approval_id)
        return self._refusal(record, user, option, team_id) or RespondResult("recorded", record)

    def _refusal(
        self,
        record: ApprovalRecord | None,
        user: str,
        option: str | None,
        team_id: str | None = None,
    ) -> RespondResult | None:
        if record is None or (team_id is not None and record.team_id != team_id):
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
        self,
        approval_id: str,
        user: str,
        option: str,
        comment: str | None = None,
        team_id: str | None = None,
    ) -> RespondResult:
        """Record one response exactly once; decide when the mode says so. `team_id`: the
        responder's workspace (from Slack's payload); another's approval is not found."""
        comment = (comment or "").strip()[:COMMENT_LIMIT] or None
        # Each failed compare-and-set means another response landed; bounded retries.
        for _ in range(1000):
            record = await self.store.get(approval_id)
            refusal = self._refusal(record, user, option, team_id)
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
        # The run goes on first (its next Slack call waits for nothing); the approval's
        # messages are updated while it does.
        await self._resume_run(record)
        await self._after_decision(record)
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


def _decision_of(ctx: StepContext, payload: Mapping[str, Any]) -> bool:
    """Is `payload` the decided output of this step's approval (`ApprovalRecord.output`)?"""
    waiting = ctx.run.steps.get(ctx.step_id)
    approval_id = waiting.output.get("approval_id") if waiting is not None else None
    return (
        bool(payload.get("outcome"))
        and approval_id is not None
        and payload.get("approval_id") == approval_id
    )


class ApprovalStepExecutor:
    """The runner's executor for `approval` steps (registered as "approval").

    execute: request the approval (once per run and step) and park with wake_at = the
    reminder or the timeout. resume: a decision's payload → Done; a timer → remind and park
    again, or expire (compare-and-set) → Done with outcome "expired"."""

    def __init__(self, service: ApprovalService) -> None:
        self.service = service

    async def execute(self, step: ApprovalStep, ctx: StepContext) -> Outcome:
        run = ctx.run
        approvers = [await ctx.text("approvers", a) for a in step.approvers]
        notify = run.definition.notify
        request = ApprovalRequest(
            team_id=run.team_id,
            run_id=run.id,
            step_id=ctx.step_id,
            flow_id=run.flow_id,
            flow_name=run.flow_name,
            requester=run.started_by,
            title=(await ctx.text("title", step.title)).strip() or "Approval",
            details=(await ctx.text("details", step.details)).strip(),
            approvers=approvers,
            mode=step.mode,
            min=step.min,
            options=[await ctx.text("options", o) for o in step.response_options],
            approve_option=await ctx.text("approve_option", step.approve_label),
            allow_comment=step.allow_comment,
            channel=(await ctx.text("channel", step.channel)).strip() or None
            if step.channel
            else None,
            notify_channel=(await ctx.text("notify", notify)).strip() or None if notify else None,
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
            record = await self.service.on_timer(ctx.run.id, ctx.step_id)
        elif _decision_of(ctx, payload):
            # The service resumes the run with the decided record's output (final once
            # decided): no read on the way to the run's next step.
            return Done(dict(payload))
        else:
            record = await self.service.store.get_for_step(ctx.run.id, ctx.step_id)
        if record is None:
            raise StepFailed("the approval request of this step is missing")
        # A decision's resume is marked by the service that resumed the run (after its
        # resume returns): not one more write on the way to the run's next step.
        return await self._settle(record, mark=is_timer(payload))

    async def _settle(self, record: ApprovalRecord, *, mark: bool = True) -> Outcome:
        if record.cancelled:
            # Only a cancelled run's approval is cancelled: this run is being stopped.
            raise StepFailed(f"the approval was cancelled: {record.cancel_reason or 'cancelled'}")
        if not record.pending:
            if mark:
                await self.service.store.mark_resumed(record.id)
            return Done(record.output())
        return Park(
            wake_at=record.next_wake(),
            waiting_for=WAITING_PREFIX + record.id,
            output={"approval_id": record.id, "approvers": list(record.approvers)},
        )
