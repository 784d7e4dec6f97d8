"""`MemoryAskStore`: asks (form requests) answered by compare-and-set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from flows.ask_model import ANSWERED, EXPIRED, AskMessage, AskRecord
from flows.testing.memory.plain import plain


class MemoryAskStore:
    """`flows.ask_model.AskStore` in memory (MongoDB: `storage.asks_repo`)."""

    def __init__(self) -> None:
        self._records: dict[str, AskRecord] = {}

    @staticmethod
    def _copy(record: AskRecord | None) -> AskRecord | None:
        return record.model_copy(deep=True) if record is not None else None

    def _pending(self, ask_id: str) -> AskRecord | None:
        record = self._records.get(ask_id)
        return record if record is not None and record.pending else None

    async def create(self, record: AskRecord) -> AskRecord:
        # One ask per (run, step): a re-executed step finds the first one.
        existing = await self.get_for_step(record.run_id, record.step_id)
        if existing is not None:
            return existing
        if record.id in self._records:
            # MongoDB refuses a second document with the same _id (DuplicateKeyError).
            raise ValueError(f"an ask with id {record.id!r} already exists")
        stored = record.model_copy(deep=True)
        stored.answers = plain(stored.answers)
        self._records[record.id] = stored
        return record

    async def get(self, ask_id: str) -> AskRecord | None:
        return self._copy(self._records.get(ask_id))

    async def get_for_step(self, run_id: str, step_id: str) -> AskRecord | None:
        found = next(
            (r for r in self._records.values() if r.run_id == run_id and r.step_id == step_id),
            None,
        )
        return self._copy(found)

    async def answer(
        self, ask_id: str, user: str, answers: Mapping[str, Any], at: datetime
    ) -> AskRecord | None:
        record = self._pending(ask_id)
        if record is None or user not in record.people:
            return None
        record.status = "answered"
        record.answers = plain(dict(answers))
        record.responder = user
        record.answered_at = at
        return self._copy(record)

    async def expire(self, ask_id: str, at: datetime) -> AskRecord | None:
        record = self._pending(ask_id)
        if record is None:
            return None
        record.status = "expired"
        record.answered_at = at
        return self._copy(record)

    async def cancel(
        self, ask_id: str, at: datetime, reason: str, by: str | None
    ) -> AskRecord | None:
        record = self._pending(ask_id)
        if record is None:
            return None
        record.status = "cancelled"
        record.cancel_reason = reason
        record.cancelled_by = by
        record.answered_at = at
        # A cancelled run is not resumed: nothing is left to do at start.
        record.resumed = True
        return self._copy(record)

    async def pending_of_run(self, run_id: str) -> list[AskRecord]:
        return [
            r.model_copy(deep=True)
            for r in self._records.values()
            if r.run_id == run_id and r.pending
        ]

    async def set_messages(self, ask_id: str, messages: Sequence[AskMessage]) -> None:
        record = self._records.get(ask_id)
        if record is not None:
            record.messages = [m.model_copy() for m in messages]
            record.requested = True

    async def mark_reminded(self, ask_id: str) -> bool:
        record = self._pending(ask_id)
        if record is None or record.reminded:
            return False
        record.reminded = True
        return True

    async def mark_resumed(self, ask_id: str) -> None:
        record = self._records.get(ask_id)
        if record is not None:
            record.resumed = True

    async def pending_for(self, team_id: str, user: str) -> list[AskRecord]:
        found = [
            r
            for r in self._records.values()
            if r.team_id == team_id and r.pending and r.requested and user in r.people
        ]
        found.sort(key=lambda r: r.created_at)
        return [r.model_copy(deep=True) for r in found]

    async def unresumed(self) -> list[AskRecord]:
        return [
            r.model_copy(deep=True)
            for r in self._records.values()
            if r.status in (ANSWERED, EXPIRED) and not r.resumed
        ]
