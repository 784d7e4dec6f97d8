"""What an approval is (SPEC §7), apart from the use cases in `flows.approvals`.

- `ApprovalRecord` is the stored approval: who may answer (expanded when the request is
  made), the mode, the responses, the outcome and the Slack messages carrying its buttons.
  `evaluate` is the decision a list of responses reaches, by mode.
- `ApprovalStore` is its storage port (MongoDB adapter in `storage.approvals_repo`). Every
  response is a compare-and-set on (status "pending", responder not yet present, version),
  so double clicks, Slack retries and racing approvers give exactly one outcome.
- `ApprovalNotifier` is how approvals reach Slack (`adapters.approval_notifier`).
- `ApprovalError` and its kinds: a step that cannot be requested as written, as data.
- `ApprovalRequest` / `RespondResult`: what the use cases take and answer.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from flows.errors import FlowbotError
from flows.people_request_model import RequestNotifier, RequestStore, next_wake

ApprovalMode = Literal["first_response", "everyone", "quorum"]
ApprovalStatus = Literal["pending", "decided", "cancelled"]

APPROVED = "approved"
REJECTED = "rejected"
EXPIRED = "expired"
CANCELLED = "cancelled"
WAITING_PREFIX = "approval:"
COMMENT_LIMIT = 2000


DEFAULT_OPTIONS: tuple[str, str] = ("Approve", "Reject")


# ------------------------------------------------------------------ refusals


class ApprovalError(FlowbotError):
    """The approval step cannot be requested as written (no approvers, bad quorum…).

    `str()` is the step's error as the failed run shows it; `cards.approvals` words it."""


class UnknownApprover(ApprovalError):
    def __init__(self, entry: str) -> None:
        super().__init__(f"approver {entry!r} is not a user, group or channel mention")
        self.entry = entry


class UnknownChannelName(UnknownApprover):
    """A `#name` among the approvers (or an ask's `to`) that names no channel the bot
    can see (none by that name, or a private one it is not in)."""

    def __init__(self, entry: str) -> None:
        ApprovalError.__init__(
            self, f"approver {entry!r}: no channel by that name that the bot can see"
        )
        self.entry = entry


class NoApprovers(ApprovalError):
    """Every group and channel named was empty (or held only the bot)."""

    def __init__(self) -> None:
        super().__init__("the approval has no approvers (empty groups or channels?)")


class ImpossibleQuorum(ApprovalError):
    def __init__(self, quorum: int, approvers: int) -> None:
        super().__init__(f"quorum of {quorum} is impossible with {approvers} approver(s)")
        self.quorum = quorum
        self.approvers = approvers


class TooFewOptions(ApprovalError):
    """Fewer than two options, or the same label twice."""

    def __init__(self, options: Sequence[str]) -> None:
        super().__init__("an approval needs at least two distinct options")
        self.options = list(options)


class UnknownApproveOption(ApprovalError):
    def __init__(self, option: str, options: Sequence[str]) -> None:
        super().__init__(f"approve option {option!r} is not one of the options")
        self.option = option
        self.options = list(options)


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
        return next_wake(self.reminder_at, self.reminded, self.timeout_at)

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


class ApprovalStore(RequestStore[ApprovalRecord], Protocol):
    """The approvals' storage port: the shared part (`flows.people_request_model`), and
    the responses. `expire` sets status "decided" with outcome "expired"; `pending_for`
    leaves out the approvals the person answered already."""

    async def add_response(
        self,
        approval_id: str,
        version: int,
        response: ApprovalResponse,
        decision: Decision | None,
        current: ApprovalRecord | None = None,
    ) -> ApprovalRecord | None:
        """Compare-and-set: only if still pending at `version`, the responder is an
        approver and has not answered. Returns the updated record, or None.

        `current`: the record as read at `version`; a store may build the decided record
        from it instead of reading it back (once decided, nothing else changes it)."""
        ...


class ApprovalNotifier(RequestNotifier[ApprovalRecord], Protocol):
    """How approvals reach people (`adapters.approval_notifier`: Block Kit cards)."""

    async def show_progress(self, record: ApprovalRecord) -> None:
        """A response was recorded without deciding: refresh the messages."""
        ...

    async def remind(self, record: ApprovalRecord, users: Sequence[str]) -> None: ...

    async def notify(self, record: ApprovalRecord, event: Literal["requested", "decided"]) -> None:
        """A notice in the flow's notify channel."""
        ...


class RunResumer(Protocol):
    """The runner's external wake-up (issue 4): give a parked step its result."""

    async def resume(
        self,
        run_id: str,
        step_id: str,
        payload: dict[str, Any],
        went_on: asyncio.Future[None] | None = None,
    ) -> Any:
        """Resume the run; resolve `went_on` once it went on past that step."""


# ------------------------------------------------------------------ use case types


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
