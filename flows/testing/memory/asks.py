"""`MemoryAskStore`: asks (form requests) answered by compare-and-set."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flows.ask_model import ANSWERED, EXPIRED, AskRecord
from flows.testing.memory.people_requests import MemoryPeopleRequests
from flows.testing.memory.plain import plain


class MemoryAskStore(MemoryPeopleRequests[AskRecord]):
    """`flows.ask_model.AskStore` in memory (MongoDB: `storage.asks_repo`)."""

    def _stored(self, record: AskRecord) -> AskRecord:
        if record.id in self._records:
            # MongoDB refuses a second document with the same _id (DuplicateKeyError).
            raise ValueError(f"an ask with id {record.id!r} already exists")
        stored = record.model_copy(deep=True)
        stored.answers = plain(stored.answers)
        return stored

    def _waits_for(self, record: AskRecord, user: str) -> bool:
        return user in record.people

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

    async def unresumed(self) -> list[AskRecord]:
        return [
            r.model_copy(deep=True)
            for r in self._records.values()
            if r.status in (ANSWERED, EXPIRED) and not r.resumed
        ]
