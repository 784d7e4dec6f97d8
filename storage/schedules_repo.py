"""Schedule state of scheduled flows (collection `schedules`): MongoDB adapter of
`flows.scheduling.ScheduleStateStore`. One document per flow, `_id` = flow id.

Every write is a single-document update, so replicas sharing the database agree: the last
slot only moves forward (`$max`), and a skip is recorded by the one process whose
conditional update matched.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from flows.scheduling import SKIP_HISTORY, ScheduleState, SkippedSlots

Doc = dict[str, Any]


def _state(doc: Doc) -> ScheduleState:
    data = {k: v for k, v in doc.items() if k != "_id"}
    data["flow_id"] = doc["_id"]
    return ScheduleState.model_validate(data)


class MongoScheduleStore:
    def __init__(self, db: AsyncIOMotorDatabase[Doc]) -> None:
        self.collection = db["schedules"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("team_id", ASCENDING)], name="team")

    async def get(self, flow_id: str) -> ScheduleState | None:
        doc = await self.collection.find_one({"_id": flow_id})
        return _state(doc) if doc else None

    async def activate(
        self, team_id: str, flow_id: str, version: int, at: datetime
    ) -> ScheduleState:
        stale = {"_id": flow_id, "$or": [{"active": {"$ne": True}}, {"version": {"$ne": version}}]}
        update = {
            "$set": {"team_id": team_id, "version": version, "active": True, "last_slot": at},
            "$setOnInsert": {"skipped_total": 0, "skipped": []},
        }
        try:
            doc = await self.collection.find_one_and_update(
                stale, update, upsert=True, return_document=ReturnDocument.AFTER
            )
        except DuplicateKeyError:
            doc = None  # active for this version already (another process got there first)
        if doc is None:
            doc = await self.collection.find_one({"_id": flow_id})
        assert doc is not None
        return _state(doc)

    async def deactivate(self, flow_id: str) -> None:
        await self.collection.update_one(
            {"_id": flow_id, "active": True}, {"$set": {"active": False}}
        )

    async def delete(self, flow_id: str) -> None:
        await self.collection.delete_one({"_id": flow_id})

    async def advance(self, flow_id: str, slot: datetime) -> None:
        await self.collection.update_one({"_id": flow_id}, {"$max": {"last_slot": slot}})

    async def record_skipped(self, flow_id: str, skipped: SkippedSlots) -> bool:
        result = await self.collection.update_one(
            {"_id": flow_id, "last_slot": {"$lt": skipped.last}},
            {
                "$set": {"last_slot": skipped.last},
                "$inc": {"skipped_total": skipped.count},
                "$push": {
                    "skipped": {
                        "$each": [skipped.model_dump(mode="python")],
                        "$slice": -SKIP_HISTORY,
                    }
                },
            },
        )
        return result.modified_count == 1

    async def claim_slot(self, flow_id: str, slot: datetime) -> bool:
        result = await self.collection.update_one(
            {"_id": flow_id, "last_slot": {"$lt": slot}}, {"$set": {"last_slot": slot}}
        )
        return result.modified_count == 1

    async def queue_slot(self, flow_id: str, slot: datetime) -> bool:
        result = await self.collection.update_one(
            {"_id": flow_id, "queued_slot": None}, {"$set": {"queued_slot": slot}}
        )
        return result.modified_count == 1

    async def take_queued(self, flow_id: str) -> datetime | None:
        doc = await self.collection.find_one_and_update(
            {"_id": flow_id, "queued_slot": {"$ne": None}},
            {"$set": {"queued_slot": None}},
            return_document=ReturnDocument.BEFORE,
        )
        slot = doc.get("queued_slot") if doc else None
        return slot if isinstance(slot, datetime) else None
