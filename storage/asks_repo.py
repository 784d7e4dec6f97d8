"""Asks in MongoDB: one document per `ask` step of a run, answered by compare-and-set."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from flows.ask_model import ANSWERED, CANCELLED, EXPIRED, AskMessage, AskRecord


def _document(record: AskRecord) -> dict[str, Any]:
    document = record.model_dump(mode="python")
    document["_id"] = document.pop("id")
    return document


def _record(document: dict[str, Any]) -> AskRecord:
    document = dict(document)
    document["id"] = document.pop("_id")
    return AskRecord.model_validate(document)


class AsksRepo:
    """Implements `flows.ask_model.AskStore`."""

    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.collection = db["asks"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("run_id", ASCENDING), ("step_id", ASCENDING)], unique=True
        )
        # Pending for a person: every field of the query leads this index (equality
        # only), which is the shape the embedded server serves from an index.
        await self.collection.create_index(
            [
                ("team_id", ASCENDING),
                ("status", ASCENDING),
                ("people", ASCENDING),
                ("requested", ASCENDING),
            ],
            name="pending_for",
        )
        await self.collection.create_index([("status", ASCENDING), ("resumed", ASCENDING)])

    async def create(self, record: AskRecord) -> AskRecord:
        try:
            await self.collection.insert_one(_document(record))
        except DuplicateKeyError:
            existing = await self.get_for_step(record.run_id, record.step_id)
            if existing is None:  # pragma: no cover - the duplicate was on _id itself
                raise
            return existing
        return record

    async def get(self, ask_id: str) -> AskRecord | None:
        document = await self.collection.find_one({"_id": ask_id})
        return _record(document) if document else None

    async def get_for_step(self, run_id: str, step_id: str) -> AskRecord | None:
        document = await self.collection.find_one({"run_id": run_id, "step_id": step_id})
        return _record(document) if document else None

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

    async def pending_of_run(self, run_id: str) -> list[AskRecord]:
        # `run_id` alone leads the (run_id, step_id) index; the status is checked here.
        cursor = self.collection.find({"run_id": run_id})
        records = [_record(document) async for document in cursor]
        return [record for record in records if record.status == "pending"]

    async def set_messages(self, ask_id: str, messages: Sequence[AskMessage]) -> None:
        await self.collection.update_one(
            {"_id": ask_id},
            {
                "$set": {
                    "messages": [m.model_dump(mode="python") for m in messages],
                    "requested": True,
                }
            },
        )

    async def mark_reminded(self, ask_id: str) -> bool:
        result = await self.collection.update_one(
            {"_id": ask_id, "status": "pending", "reminded": False},
            {"$set": {"reminded": True}},
        )
        return result.modified_count == 1

    async def mark_resumed(self, ask_id: str) -> None:
        await self.collection.update_one({"_id": ask_id}, {"$set": {"resumed": True}})

    async def pending_for(self, team_id: str, user: str) -> list[AskRecord]:
        cursor = self.collection.find(
            {"team_id": team_id, "status": "pending", "people": user, "requested": True}
        )
        records = [_record(document) async for document in cursor]
        return sorted(records, key=lambda record: record.created_at)

    async def unresumed(self) -> list[AskRecord]:
        cursor = self.collection.find({"status": {"$in": [ANSWERED, EXPIRED]}, "resumed": False})
        return [_record(document) async for document in cursor]
