"""Failure streaks of flows (collection `failure_streaks`): MongoDB adapter of
`flows.alerts.FailureStreakStore`. One document per flow, `_id` = flow id; each change is
one atomic update returning the count, so each threshold crossing is seen once.
"""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING, ReturnDocument

Doc = dict[str, Any]


class MongoFailureStreaks:
    def __init__(self, db: AsyncIOMotorDatabase[Doc]) -> None:
        self.collection = db["failure_streaks"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("team_id", ASCENDING)], name="team")

    async def failed(self, team_id: str, flow_id: str) -> int:
        doc = await self.collection.find_one_and_update(
            {"_id": flow_id},
            {"$inc": {"count": 1}, "$set": {"team_id": team_id}},
            upsert=True,
            return_document=ReturnDocument.AFTER,
        )
        return int(doc.get("count", 0)) if doc else 0

    async def succeeded(self, flow_id: str) -> int:
        # Each success of a flow comes here: a read by `_id` (no streak: done), then a
        # compare-and-set on the count read (`find_one_and_update` makes the embedded
        # server scan; see storage/runs_repo.py `_after`).
        while True:
            doc = await self.collection.find_one({"_id": flow_id}, projection={"count": 1})
            count = int(doc.get("count", 0)) if doc else 0
            if count <= 0:
                return 0
            reset = await self.collection.update_one(
                {"_id": flow_id, "count": count}, {"$set": {"count": 0}}
            )
            if reset.modified_count == 1:
                return count

    async def forget(self, flow_id: str) -> None:
        await self.collection.delete_one({"_id": flow_id})
