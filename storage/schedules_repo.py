"""Schedule state of scheduled flows (collection `schedules`): MongoDB adapter of
`flows.scheduling.ScheduleStateStore`. One document per flow, `_id` = flow id.

Every write is a single-document update, so replicas sharing the database agree: the last
slot only moves forward (`$max`), and a skip is recorded by the one process whose
conditional update matched.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from flows.scheduling import SKIP_HISTORY, ScheduleState, SkippedSlots

Doc = dict[str, Any]
# Past this many flows, `get_many` reads the collection rather than looking each one up.
_BULK = 100


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

    async def get_many(self, flow_ids: Sequence[str]) -> dict[str, ScheduleState]:
        """The states of these flows. A few: one `_id: {$in}` read. Many (a start): one
        read of the whole collection (one document per scheduled flow), which SecantusDB
        serves ~25x faster than thousands of `_id` lookups (0.18 s against 4.3 s at 5,000)."""
        wanted = set(flow_ids)
        query: Doc = {"_id": {"$in": list(wanted)}} if len(wanted) <= _BULK else {}
        states: dict[str, ScheduleState] = {}
        async for doc in self.collection.find(query):
            if doc["_id"] in wanted:
                states[str(doc["_id"])] = _state(doc)
        return states

    async def activate(
        self, team_id: str, flow_id: str, version: int, at: datetime
    ) -> ScheduleState:
        # Every query by `_id` alone or `{_id, ...}` (an index serves both; `{_id, $or}` is
        # a collection scan on the embedded server). A restart finds most schedules active
        # for their version already: one read, no write.
        doc = await self.collection.find_one({"_id": flow_id})
        if doc is not None and doc.get("active") is True and doc.get("version") == version:
            return _state(doc)
        fields = {"team_id": team_id, "version": version, "active": True, "last_slot": at}
        if doc is None:
            try:
                await self.collection.insert_one(
                    {"_id": flow_id, **fields, "skipped_total": 0, "skipped": []}
                )
            except DuplicateKeyError:
                pass  # another process got there first: its activation stands
        else:
            # Compare-and-set on what was read: if another process moved it, theirs stands.
            await self.collection.update_one(
                {"_id": flow_id, "active": doc.get("active"), "version": doc.get("version")},
                {"$set": fields},
            )
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
        # A compare-and-set on the slot read: one process takes it (no findAndModify, which
        # the embedded server serves with a scan).
        doc = await self.collection.find_one({"_id": flow_id}, projection={"queued_slot": 1})
        slot = doc.get("queued_slot") if doc else None
        if not isinstance(slot, datetime):
            return None
        taken = await self.collection.update_one(
            {"_id": flow_id, "queued_slot": slot}, {"$set": {"queued_slot": None}}
        )
        return slot if taken.modified_count == 1 else None
