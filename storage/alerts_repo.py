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
        doc = await self.collection.find_one_and_update(
            {"_id": flow_id, "count": {"$gt": 0}},
            {"$set": {"count": 0}},
            return_document=ReturnDocument.BEFORE,
        )
        return int(doc.get("count", 0)) if doc else 0

    async def forget(self, flow_id: str) -> None:
        await self.collection.delete_one({"_id": flow_id})
