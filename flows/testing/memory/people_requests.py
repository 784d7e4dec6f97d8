"""What the in-memory approvals and asks stores share (`MemoryApprovalStore`,
`MemoryAskStore`), as `storage.people_requests_repo` does for MongoDB: one record per
(run, step), copies in and out, the posted messages, the reminder flipped once, the
resumed flag, and a person's pending list (oldest first)."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any, Generic, Protocol, TypeVar

from flows.people_request_model import WaitingRecord


class _Stored(WaitingRecord, Protocol):
    """A record as kept here: what the shared use cases read, and the flags set in place."""

    @property
    def created_at(self) -> datetime: ...

    messages: list[Any]
    requested: bool
    reminded: bool
    resumed: bool


R = TypeVar("R", bound=_Stored)


class MemoryPeopleRequests(Generic[R]):
    """The shared part; each store adds its compare-and-sets and `_waits_for`."""

    def __init__(self) -> None:
        self._records: dict[str, R] = {}

    @staticmethod
    def _copy(record: R | None) -> R | None:
        return record.model_copy(deep=True) if record is not None else None

    def _pending(self, record_id: str) -> R | None:
        record = self._records.get(record_id)
        return record if record is not None and record.status == "pending" else None

    def _stored(self, record: R) -> R:
        """The copy kept of a new record."""
        return record.model_copy(deep=True)

    async def create(self, record: R) -> R:
        # One per (run, step): a re-executed step finds the first one.
        existing = await self.get_for_step(record.run_id, record.step_id)
        if existing is not None:
            return existing
        self._records[record.id] = self._stored(record)
        return record

    async def get(self, record_id: str) -> R | None:
        return self._copy(self._records.get(record_id))

    async def get_for_step(self, run_id: str, step_id: str) -> R | None:
        found = next(
            (r for r in self._records.values() if r.run_id == run_id and r.step_id == step_id),
            None,
        )
        return self._copy(found)

    async def pending_of_run(self, run_id: str) -> list[R]:
        return [
            r.model_copy(deep=True)
            for r in self._records.values()
            if r.run_id == run_id and r.status == "pending"
        ]

    async def set_messages(self, record_id: str, messages: Sequence[Any]) -> None:
        record = self._records.get(record_id)
        if record is not None:
            record.messages = [m.model_copy() for m in messages]
            record.requested = True

    async def mark_reminded(self, record_id: str) -> bool:
        record = self._pending(record_id)
        if record is None or record.reminded:
            return False
        record.reminded = True
        return True

    async def mark_resumed(self, record_id: str) -> None:
        record = self._records.get(record_id)
        if record is not None:
            record.resumed = True

    def _waits_for(self, record: R, user: str) -> bool:
        """Is `user` one of the people this pending record still waits for?"""
        raise NotImplementedError

    def _found_for(self, team_id: str, user: str) -> list[R]:
        found = [
            r
            for r in self._records.values()
            if r.team_id == team_id
            and r.status == "pending"
            and r.requested
            and self._waits_for(r, user)
        ]
        found.sort(key=lambda r: r.created_at)
        return found

    async def pending_for(self, team_id: str, user: str) -> list[R]:
        return [r.model_copy(deep=True) for r in self._found_for(team_id, user)]

    async def pending_page(self, team_id: str, user: str, limit: int) -> tuple[list[R], int]:
        found = self._found_for(team_id, user)
        return [r.model_copy(deep=True) for r in found[: max(limit, 0)]], len(found)
