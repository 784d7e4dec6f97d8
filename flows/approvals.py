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

import logging
from collections.abc import Awaitable, Callable
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
    evaluate,
)
from flows.definition import ApprovalStep
from flows.foreground import Foreground
from flows.people_requests import (
    PeopleRequestExecutor,
    PeopleRequestService,
    expand_approvers,
    rendered_notify_channel,
    resolve_principals,
)
from flows.ports import Clock, Directory, IdGenerator
from flows.runner import Outcome, StepContext, StepFailed

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


# ------------------------------------------------------------------ the service


class ApprovalService(PeopleRequestService[ApprovalRecord, ApprovalRequest]):
    """Approvals' use cases; also a `Service` (start: resume runs a crash left waiting).
    The waiting itself (posting once, resuming, cancelling, timers) is
    `flows.people_requests`; the responses and modes are here."""

    noun = "approval"
    closed = "decided"
    store: ApprovalStore
    notifier: ApprovalNotifier

    def __init__(
        self,
        store: ApprovalStore,
        notifier: ApprovalNotifier,
        directory: Directory,
        clock: Clock,
        ids: IdGenerator,
        resumer: RunResumer | None = None,
        foreground: Foreground | None = None,
    ) -> None:
        super().__init__(store, notifier, directory, clock, ids, resumer, foreground)

    def attach_runner(self, resumer: RunResumer) -> None:
        self.resumer = resumer

    # --- requests

    async def _new_record(self, req: ApprovalRequest) -> ApprovalRecord:
        """The approval `req` asks for; an `ApprovalError` if it cannot be made as written."""
        principals, approvers, _bot = await self._people(req.team_id, req.approvers)
        if not approvers:
            raise NoApprovers()
        minimum = _quorum(req, len(approvers))
        options, approve_option = _options(req)
        channel = await self._resolve_channel(req.team_id, req.channel)
        notify_channel = await self._resolve_channel(req.team_id, req.notify_channel)
        return ApprovalRecord(
            **self._common_fields(req, "A"),
            mode=req.mode,
            min=minimum,
            principals=principals,
            approvers=approvers,
            options=options,
            approve_option=approve_option,
            allow_comment=req.allow_comment,
            channel=channel,
            notify_channel=notify_channel,
        )

    async def _resolve_channel(self, team_id: str, channel: str | None) -> str | None:
        return await self.directory.resolve_channel(team_id, channel) if channel else None

    # --- responses

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        return await self.store.get(approval_id)

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
        before_write: Callable[[], Awaitable[None]] | None = None,
    ) -> RespondResult:
        """Record one response exactly once; decide when the mode says so. `team_id`: the
        responder's workspace (from Slack's payload); another's approval is not found.
        `before_write` is awaited before the response is written (a click's delivery
        recorded meanwhile: it raises for a repeated one)."""
        comment = (comment or "").strip()[:COMMENT_LIMIT] or None
        with self.foreground.hold():  # a decision holds it on until its run went on
            return await self._respond(approval_id, user, option, comment, team_id, before_write)

    async def _respond(
        self,
        approval_id: str,
        user: str,
        option: str,
        comment: str | None,
        team_id: str | None,
        before_write: Callable[[], Awaitable[None]] | None,
    ) -> RespondResult:
        # Each failed compare-and-set means another response landed; bounded retries.
        for _ in range(1000):
            record = await self.store.get(approval_id)
            refusal = self._refusal(record, user, option, team_id)
            if refusal is not None:
                return refusal
            assert record is not None
            response = ApprovalResponse(user=user, response=option, comment=comment, at=self.now())
            decision = evaluate(record, [*record.responses, response])
            if before_write is not None:
                await before_write()
            updated = await self.store.add_response(
                record.id, record.version, response, decision, current=record
            )
            if updated is None:
                continue
            if decision is None:
                await self._quietly(self.notifier.show_progress(updated), "progress update")
                return RespondResult("recorded", updated)
            # The clicker's answer need not wait for the messages and the run; the run
            # goes on first, the messages are updated after (flows.people_requests).
            self._spawn(self._conclude_decided(updated, self.foreground.hold()))
            return RespondResult("decided", updated)
        raise RuntimeError(f"approval {approval_id}: too much contention")  # pragma: no cover

    async def _after_decided(self, record: ApprovalRecord) -> None:
        await self._after_decision(record)

    async def _after_decision(self, record: ApprovalRecord) -> None:
        await self._later("outcome update", lambda: self.notifier.show_outcome(record))
        await self._later("decided notice", lambda: self.notifier.notify(record, "decided"))
        if record.negative and record.requester:
            await self._later("requester notice", lambda: self.notifier.tell_requester(record))

    # --- timers

    async def _after_expiry(self, record: ApprovalRecord) -> None:
        await self._after_decision(record)
        await self._quietly(self.notifier.refresh_lists(record), "pending lists")

    async def _remind(self, record: ApprovalRecord) -> None:
        await self.notifier.remind(record, record.awaiting())


# ------------------------------------------------------------------ the step executor


class ApprovalStepExecutor(PeopleRequestExecutor[ApprovalRecord]):
    """The runner's executor for `approval` steps (registered as "approval").

    execute: request the approval (once per run and step) and park with wake_at = the
    reminder or the timeout. resume: a decision's payload → Done; a timer → remind and park
    again, or expire (compare-and-set) → Done with outcome "expired"."""

    what = "approval"
    waiting_prefix = WAITING_PREFIX
    id_key = "approval_id"
    service: ApprovalService

    def __init__(self, service: ApprovalService) -> None:
        super().__init__(service)

    async def execute(self, step: ApprovalStep, ctx: StepContext) -> Outcome:
        run = ctx.run
        approvers = [await ctx.text("approvers", a) for a in step.approvers]
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
            notify_channel=await rendered_notify_channel(ctx),
            timeout=step.timeout_delta,
            reminder=step.reminder_delta,
        )
        try:
            record = await self.service.request(request)
        except ApprovalError as exc:
            raise StepFailed(str(exc), "approvers") from None
        return await self._settle(record)

    def _parked(self, record: ApprovalRecord) -> dict[str, Any]:
        return {"approval_id": record.id, "approvers": list(record.approvers)}
