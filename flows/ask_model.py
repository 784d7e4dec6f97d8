"""What an `ask` is (SPEC §13), apart from the use cases in `flows.asks`.

- `AskRecord` is the stored form request: who was asked (expanded when it is made), the
  fields, the answers, the outcome and the Slack messages carrying its **Fill in** button.
- `AskStore` is its storage port (MongoDB adapter in `storage.asks_repo`). The answer is a
  compare-and-set on (status "pending", the responder among the people asked), so racing
  submissions give exactly one answer.
- `AskNotifier` is how asks reach Slack (`adapters.ask_notifier`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from flows.definition import FlowInput

AskStatus = Literal["pending", "answered", "expired", "cancelled"]
ANSWERED = "answered"
EXPIRED = "expired"
CANCELLED = "cancelled"
WAITING_PREFIX = "ask:"


class AskMessage(BaseModel):
    """A message carrying the Fill in button: a DM to `person`, or a channel post."""

    channel: str
    ts: str
    person: str | None = None


class AskRecord(BaseModel):
    id: str
    team_id: str
    run_id: str
    step_id: str
    flow_id: str = ""
    flow_name: str = ""
    requester: str | None = None
    title: str
    details: str = ""
    fields: list[FlowInput] = Field(default_factory=list)
    # As written in the step (users, groups, channels), and expanded to people.
    principals: list[str] = Field(default_factory=list)
    people: list[str] = Field(default_factory=list)
    # The channels named in `to`: the form is posted there instead of DMed to members.
    channels: list[str] = Field(default_factory=list)
    # The people asked directly or through a group: each gets a DM.
    direct: list[str] = Field(default_factory=list)
    status: AskStatus = "pending"
    answers: dict[str, Any] = Field(default_factory=dict)
    responder: str | None = None
    answered_at: datetime | None = None
    cancel_reason: str | None = None
    cancelled_by: str | None = None
    messages: list[AskMessage] = Field(default_factory=list)
    requested: bool = False
    created_at: datetime
    timeout_at: datetime | None = None
    reminder_at: datetime | None = None
    reminded: bool = False
    resumed: bool = False

    @property
    def pending(self) -> bool:
        return self.status == "pending"

    def next_wake(self) -> datetime | None:
        if self.reminder_at is not None and not self.reminded:
            if self.timeout_at is None or self.reminder_at < self.timeout_at:
                return self.reminder_at
        return self.timeout_at

    def output(self) -> dict[str, Any]:
        """What the run sees as `steps.<id>`: every field id is in `answers` (None when
        not given)."""
        answers = {spec.id: self.answers.get(spec.id) for spec in self.fields}
        return {
            "ask_id": self.id,
            "outcome": self.status,
            "answers": answers,
            "responder": self.responder,
            "asked": list(self.people),
        }


# ------------------------------------------------------------------ ports


class AskStore(Protocol):
    async def create(self, record: AskRecord) -> AskRecord:
        """Insert, or return the ask already made for (run_id, step_id)."""
        ...

    async def get(self, ask_id: str) -> AskRecord | None: ...

    async def get_for_step(self, run_id: str, step_id: str) -> AskRecord | None: ...

    async def answer(
        self, ask_id: str, user: str, answers: Mapping[str, Any], at: datetime
    ) -> AskRecord | None:
        """Compare-and-set: only if still pending and `user` was asked. The updated
        record, or None (someone else answered first, it expired or was cancelled)."""
        ...

    async def expire(self, ask_id: str, at: datetime) -> AskRecord | None:
        """Compare-and-set pending → expired; None if not pending."""
        ...

    async def cancel(
        self, ask_id: str, at: datetime, reason: str, by: str | None
    ) -> AskRecord | None:
        """Compare-and-set pending → cancelled; None if not pending."""
        ...

    async def pending_of_run(self, run_id: str) -> list[AskRecord]: ...

    async def set_messages(self, ask_id: str, messages: Sequence[AskMessage]) -> None:
        """Record the posted messages and mark the ask requested."""
        ...

    async def mark_reminded(self, ask_id: str) -> bool:
        """True for the one caller that flips `reminded` (while still pending)."""
        ...

    async def mark_resumed(self, ask_id: str) -> None: ...

    async def pending_for(self, team_id: str, user: str) -> list[AskRecord]:
        """Pending asks (already posted) where `user` is asked."""
        ...

    async def unresumed(self) -> list[AskRecord]:
        """Answered or expired asks whose run has not been given the outcome yet."""
        ...


class AskNotifier(Protocol):
    async def send_request(self, record: AskRecord) -> list[AskMessage]:
        """Post the Fill in button: a DM to each person, a post in each channel."""
        ...

    async def show_outcome(self, record: AskRecord) -> None:
        """Every message shows who answered (or that it expired / was cancelled)."""
        ...

    async def remind(self, record: AskRecord) -> None: ...

    async def bot_user(self) -> str | None: ...

    async def refresh_lists(self, record: AskRecord) -> None:
        """The pending lists of the people asked changed (App Home)."""
        ...


# ------------------------------------------------------------------ use case types


@dataclass
class AskRequest:
    """An ask step with its templates rendered (the executor builds it)."""

    team_id: str
    run_id: str
    step_id: str
    title: str
    to: list[str]
    fields: list[FlowInput]
    flow_id: str = ""
    flow_name: str = ""
    requester: str | None = None
    details: str = ""
    timeout: timedelta | None = None
    reminder: timedelta | None = None


AskResultKind = Literal[
    "open",  # may fill in (check)
    "answered",  # this submission is the answer
    "invalid",  # field errors: `errors` by field id
    "already_answered",
    "expired",
    "cancelled",
    "not_asked",
    "not_found",
]


@dataclass(frozen=True)
class AskResult:
    kind: AskResultKind
    record: AskRecord | None = None
    errors: dict[str, str] = field(default_factory=dict)
