"""What approvals (`flows.approval_model`) and asks (`flows.ask_model`) share: both are a
request to people that a run waits for, stored one per (run, step), posted once, decided
or answered once by a compare-and-set, expired and reminded on the run's durable timers.

- `WaitingRecord` / `WaitingRequest`: what the shared use cases read of either kind.
- `RequestStore` / `RequestNotifier`: the storage and Slack ports' common part; each
  area's port adds its own decision (`add_response`, `answer`) and wording.
- `next_wake`: the reminder or the timeout, whichever comes first.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol, Self, TypeVar


class _OfAStep(Protocol):
    """Where a request comes from: the run's step, its workspace, who started the run."""

    @property
    def team_id(self) -> str: ...
    @property
    def run_id(self) -> str: ...
    @property
    def step_id(self) -> str: ...
    @property
    def requester(self) -> str | None: ...


class WaitingRecord(_OfAStep, Protocol):
    """An approval or an ask record, as the shared use cases read it."""

    @property
    def id(self) -> str: ...
    @property
    def status(self) -> str: ...
    @property
    def cancel_reason(self) -> str | None: ...
    @property
    def requested(self) -> bool: ...
    @property
    def timeout_at(self) -> datetime | None: ...
    @property
    def reminder_at(self) -> datetime | None: ...
    @property
    def reminded(self) -> bool: ...
    @property
    def pending(self) -> bool: ...

    def next_wake(self) -> datetime | None: ...

    def output(self) -> dict[str, Any]: ...

    def model_copy(
        self, *, update: Mapping[str, Any] | None = None, deep: bool = False
    ) -> Self: ...


class WaitingRequest(_OfAStep, Protocol):
    """An approval or an ask request (templates rendered), as the shared use cases read it."""

    @property
    def flow_id(self) -> str: ...
    @property
    def flow_name(self) -> str: ...
    @property
    def title(self) -> str: ...
    @property
    def details(self) -> str: ...
    @property
    def timeout(self) -> timedelta | None: ...
    @property
    def reminder(self) -> timedelta | None: ...


R = TypeVar("R", bound=WaitingRecord)
R_contra = TypeVar("R_contra", bound=WaitingRecord, contravariant=True)


def next_wake(
    reminder_at: datetime | None, reminded: bool, timeout_at: datetime | None
) -> datetime | None:
    """When the parked step wakes next: the reminder (if still to come and before the
    timeout), else the timeout."""
    if reminder_at is not None and not reminded:
        if timeout_at is None or reminder_at < timeout_at:
            return reminder_at
    return timeout_at


class RequestStore(Protocol[R]):
    """The storage port both kinds share (one document per run and step)."""

    async def create(self, record: R) -> R:
        """Insert, or return the one already made for (run_id, step_id)."""
        ...

    async def get(self, record_id: str) -> R | None: ...

    async def get_for_step(self, run_id: str, step_id: str) -> R | None: ...

    async def expire(self, record_id: str, at: datetime) -> R | None:
        """Compare-and-set pending → expired; None if not pending."""
        ...

    async def cancel(self, record_id: str, at: datetime, reason: str, by: str | None) -> R | None:
        """Compare-and-set pending → cancelled; None if not pending."""
        ...

    async def pending_of_run(self, run_id: str) -> list[R]:
        """The run's requests still pending."""
        ...

    async def set_messages(self, record_id: str, messages: Sequence[Any]) -> None:
        """Record the posted messages and mark the request requested."""
        ...

    async def mark_reminded(self, record_id: str) -> bool:
        """True for the one caller that flips `reminded` (while still pending)."""
        ...

    async def mark_resumed(self, record_id: str) -> None: ...

    async def pending_for(self, team_id: str, user: str) -> list[R]:
        """Pending requests (already posted) waiting for `user`."""
        ...

    async def pending_page(self, team_id: str, user: str, limit: int) -> tuple[list[R], int]:
        """The first `limit` of `pending_for` (oldest first) and how many there are in
        all: the App Home shows a few and counts the rest without loading them."""
        ...

    async def unresumed(self) -> list[R]:
        """Closed requests whose run has not been given the outcome yet."""
        ...


class RequestNotifier(Protocol[R_contra]):
    """The Slack port both kinds share (`adapters.people_messages` helps both)."""

    async def send_request(self, record: R_contra) -> list[Any]:
        """Post the buttons: DMs to people, or posts in channels."""
        ...

    async def show_outcome(self, record: R_contra) -> None:
        """Every message shows the outcome (or that it was cancelled); no buttons."""
        ...

    async def tell_requester(self, record: R_contra) -> None:
        """The person who started the run hears of a negative outcome."""
        ...

    async def notify(self, record: R_contra, event: Literal["requested"]) -> None:
        """A notice in the flow's notify channel (none when the flow has none)."""
        ...

    async def bot_user(self) -> str | None:
        """The bot's own user id: never one of the people asked."""
        ...

    async def refresh_lists(self, record: R_contra) -> None:
        """The pending lists of the people asked changed (App Home)."""
        ...
