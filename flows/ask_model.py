"""What an `ask` is (SPEC §13), apart from the use cases in `flows.asks`.

- `AskRecord` is the stored form request: who was asked (expanded when it is made), the
  fields, the answers, the outcome and the Slack messages carrying its **Fill in** button.
- `AskStore` is its storage port (MongoDB adapter in `storage.asks_repo`). The answer is a
  compare-and-set on (status "pending", the responder among the people asked), so racing
  submissions give exactly one answer.
- `AskNotifier` is how asks reach Slack (`adapters.ask_notifier`).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel, Field

from flows.approval_model import RunResumer
from flows.definition import FlowInput
from flows.people_request_model import RequestNotifier, RequestStore, next_wake
from flows.records import RunRecord

AskStatus = Literal["pending", "answered", "expired", "cancelled"]
ANSWERED = "answered"
EXPIRED = "expired"
CANCELLED = "cancelled"
WAITING_PREFIX = "ask:"
# What the notify channel hears of: the form was posted, then answered or expired.
AskEvent = Literal["requested", "closed"]


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
    # The flow's notify channel (SPEC §8): hears the form was requested, answered, expired.
    notify_channel: str | None = None
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
        return next_wake(self.reminder_at, self.reminded, self.timeout_at)

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


class AskStore(RequestStore[AskRecord], Protocol):
    """The asks' storage port: the shared part (`flows.people_request_model`), and the
    one answer."""

    async def answer(
        self, ask_id: str, user: str, answers: Mapping[str, Any], at: datetime
    ) -> AskRecord | None:
        """Compare-and-set: only if still pending and `user` was asked. The updated
        record, or None (someone else answered first, it expired or was cancelled)."""
        ...


class AskNotifier(RequestNotifier[AskRecord], Protocol):
    """How asks reach Slack (`adapters.ask_notifier`)."""

    async def remind(self, record: AskRecord) -> None: ...

    async def notify(self, record: AskRecord, event: AskEvent) -> None:
        """A notice in the flow's notify channel (none when the flow has none)."""
        ...


class AskRunResumer(RunResumer, Protocol):
    """The runner, as asks use it: resume a run, and look one up (a form whose run has
    ended is closed when someone tries to fill it in)."""

    async def get(self, run_id: str) -> RunRecord | None: ...


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
    notify_channel: str | None = None
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
