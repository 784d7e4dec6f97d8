"""Failure streaks of flows (collection `failure_streaks`): MongoDB adapter of
`flows.alerts.FailureStreakStore`. One document per flow, `_id` = flow id: `count` (the
failures in a row), `last_failed_at` (when the last of them ended), `team_id`. A failure
is one atomic update returning the count, so each threshold crossing is seen once; a reset
is a compare-and-set on the streak read, so each recovery is seen once.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime, timezone
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING, ReturnDocument

from flows.alerts import Streak

Doc = dict[str, Any]


def _aware(value: Any) -> datetime | None:
    if not isinstance(value, datetime):
        return None
    return value if value.tzinfo else value.replace(tzinfo=timezone.utc)


class MongoFailureStreaks:
    def __init__(self, db: AsyncIOMotorDatabase[Doc]) -> None:
        self.collection = db["failure_streaks"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index([("team_id", ASCENDING)], name="team")

    async def failed(self, team_id: str, flow_id: str, at: datetime | None = None) -> int:
        # Failures are rare: `find_one_and_update` (which scans on the embedded server) is
        # kept off the hot paths, not off this one.
        update: Doc = {"$inc": {"count": 1}, "$set": {"team_id": team_id}}
        if at is not None:
            update["$max"] = {"last_failed_at": at}
        doc = await self.collection.find_one_and_update(
            {"_id": flow_id}, update, upsert=True, return_document=ReturnDocument.AFTER
        )
        return int(doc.get("count", 0)) if doc else 0

    async def streaks(self, flow_ids: Sequence[str]) -> dict[str, Streak]:
        # By `_id` alone (the embedded server scans `{_id: {$in}, count: ...}`); a flow
        # that recovered keeps a document with count 0, which is left out here.
        cursor = self.collection.find(
            {"_id": {"$in": list(flow_ids)}}, projection={"count": 1, "last_failed_at": 1}
        )
        return {
            str(doc["_id"]): Streak(int(doc["count"]), _aware(doc.get("last_failed_at")))
            async for doc in cursor
            if int(doc.get("count", 0)) > 0
        }

    async def reset(self, flow_id: str, streak: Streak) -> bool:
        done = await self.collection.update_one(
            {"_id": flow_id, "count": streak.count, "last_failed_at": streak.last_failed_at},
            {"$set": {"count": 0}},
        )
        return done.modified_count == 1

    async def forget(self, flow_id: str) -> None:
        await self.collection.delete_one({"_id": flow_id})
