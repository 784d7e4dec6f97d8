"""Asks in MongoDB: one document per `ask` step of a run, answered by compare-and-set."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import datetime
from typing import Any

from flows.ask_model import ANSWERED, CANCELLED, EXPIRED, AskRecord
from storage.people_requests_repo import PeopleRequestsRepo


class AsksRepo(PeopleRequestsRepo[AskRecord]):
    """Implements `flows.ask_model.AskStore` (the shared part: `storage.people_requests_repo`)."""

    collection_name = "asks"
    people_field = "people"
    record_type = AskRecord

    async def _close(
        self, ask_id: str, extra: Mapping[str, Any], changes: dict[str, Any]
    ) -> AskRecord | None:
        """Compare-and-set: from pending (and `extra`) to `changes`; the record or None."""
        result = await self.collection.update_one(
            {"_id": ask_id, "status": "pending", **extra}, {"$set": changes}
        )
        return await self.get(ask_id) if result.modified_count == 1 else None

    async def answer(
        self, ask_id: str, user: str, answers: Mapping[str, Any], at: datetime
    ) -> AskRecord | None:
        changes = {
            "status": ANSWERED,
            "answers": dict(answers),
            "responder": user,
            "answered_at": at,
        }
        return await self._close(ask_id, {"people": user}, changes)

    async def expire(self, ask_id: str, at: datetime) -> AskRecord | None:
        return await self._close(ask_id, {}, {"status": EXPIRED, "answered_at": at})

    async def cancel(
        self, ask_id: str, at: datetime, reason: str, by: str | None
    ) -> AskRecord | None:
        changes = {
            "status": CANCELLED,
            "cancel_reason": reason,
            "cancelled_by": by,
            "answered_at": at,
            # A cancelled run is not resumed: nothing is left to do at start.
            "resumed": True,
        }
        return await self._close(ask_id, {}, changes)

    async def pending_for(self, team_id: str, user: str) -> list[AskRecord]:
        return await self._pending_for(team_id, user)

    async def unresumed(self) -> list[AskRecord]:
        cursor = self.collection.find({"status": {"$in": [ANSWERED, EXPIRED]}, "resumed": False})
        return [self._record(document) async for document in cursor]
