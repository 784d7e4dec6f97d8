"""The trigger log (collection `trigger_log`): MongoDB adapter of
`flows.trigger_log.TriggerLogStore`. A TTL index on `at` removes records after 7 days;
events that reached no flow are one document per workspace and minute (`kind: unmatched`,
counts added with `$inc`).
"""

from __future__ import annotations

from collections import Counter
from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING, DESCENDING

from flows.trigger_log import RETENTION, TriggerDecision
from storage.newest import newest

Doc = dict[str, Any]


class MongoTriggerLog:
    def __init__(self, db: AsyncIOMotorDatabase[Doc]) -> None:
        self.collection = db["trigger_log"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("at", ASCENDING)], name="ttl", expireAfterSeconds=int(RETENTION.total_seconds())
        )
        await self.collection.create_index(
            [("flow_id", ASCENDING), ("at", DESCENDING)], name="flow_at"
        )
        await self.collection.create_index(
            [("team_id", ASCENDING), ("at", ASCENDING)], name="team_at"
        )

    async def record(self, decision: TriggerDecision) -> None:
        doc = decision.model_dump(mode="python", exclude={"id"})
        doc["_id"] = decision.id
        await self.collection.insert_one(doc)

    async def latest(self, flow_id: str, limit: int) -> list[TriggerDecision]:
        # Window by window of `at` (`storage.newest`), each a range on the `flow_at` index.
        newest_first = [("at", DESCENDING), ("_id", DESCENDING)]
        out = []
        for doc in await newest(self.collection, {"flow_id": flow_id}, "at", limit, newest_first):
            doc["id"] = doc.pop("_id")
            out.append(TriggerDecision.model_validate(doc))
        return out

    async def add_unmatched(self, team_id: str, minute: datetime, counts: dict[str, int]) -> None:
        await self.collection.update_one(
            {"_id": f"unmatched:{team_id}:{minute.isoformat()}"},
            {
                "$setOnInsert": {"team_id": team_id, "at": minute, "kind": "unmatched"},
                "$inc": {f"counts.{kind}": n for kind, n in counts.items()},
            },
            upsert=True,
        )

    async def unmatched_since(self, team_id: str, since: datetime) -> dict[str, int]:
        total: Counter[str] = Counter()
        cursor = self.collection.find(
            {"kind": "unmatched", "team_id": team_id, "at": {"$gte": since}}, {"counts": 1}
        )
        async for doc in cursor:
            total.update({k: int(v) for k, v in (doc.get("counts") or {}).items()})
        return dict(total)
