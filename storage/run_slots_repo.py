"""The `run_slots` collection: per flow with a `concurrency` limit, the ids of the runs
holding one of its slots (`flows.concurrency.RunSlotStore`).

Taking a slot is one conditional update: the id is added only while the list has fewer
than `limit` ids (`runs.<limit-1>` does not exist), so two processes can't both take the
last slot. The flow's document is created by the first take (an upsert; a concurrent
first take loses on the unique `_id` and tries again).
"""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorCollection, AsyncIOMotorDatabase
from pymongo.errors import DuplicateKeyError

Doc = dict[str, Any]


class MongoRunSlots:
    def __init__(self, db: AsyncIOMotorDatabase[Doc]) -> None:
        self.collection: AsyncIOMotorCollection[Doc] = db["run_slots"]

    async def ensure_indexes(self) -> None:
        return None  # one document per flow, by _id

    async def take(self, flow_id: str, run_id: str, limit: int) -> bool:
        for _ in range(3):
            held = await self.collection.find_one({"_id": flow_id, "runs": run_id})
            if held is not None:
                return True
            try:
                outcome = await self.collection.update_one(
                    {"_id": flow_id, f"runs.{limit - 1}": {"$exists": False}},
                    {"$addToSet": {"runs": run_id}},
                    upsert=True,
                )
            except DuplicateKeyError:
                # The document exists and is full (or was just created by another take).
                if await self.collection.find_one({"_id": flow_id}) is not None:
                    full = await self.collection.find_one(
                        {"_id": flow_id, f"runs.{limit - 1}": {"$exists": True}}
                    )
                    if full is not None:
                        return False
                continue
            return outcome.matched_count == 1 or outcome.upserted_id is not None
        return False

    async def release(self, flow_id: str, run_id: str) -> None:
        await self.collection.update_one({"_id": flow_id}, {"$pull": {"runs": run_id}})

    async def holders(self, flow_id: str) -> list[str]:
        doc = await self.collection.find_one({"_id": flow_id})
        return [str(r) for r in (doc or {}).get("runs") or []]
