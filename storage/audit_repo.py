"""The audit trail of sharing changes (who changed what, when), newest first."""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING, DESCENDING

from flows.sharing.model import AuditEntry


class AuditRepo:
    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.collection = db["sharing_audit"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("team_id", ASCENDING), ("flow_id", ASCENDING), ("at", DESCENDING)]
        )

    async def add(self, entry: AuditEntry) -> None:
        document = entry.model_dump(mode="python")
        document["_id"] = document.pop("id")
        await self.collection.insert_one(document)

    async def for_flow(self, team_id: str, flow_id: str, limit: int = 20) -> list[AuditEntry]:
        cursor = (
            self.collection.find({"team_id": team_id, "flow_id": flow_id})
            .sort([("at", DESCENDING), ("_id", DESCENDING)])
            .limit(limit)
        )
        return [_entry(document) async for document in cursor]


def _entry(document: dict[str, Any]) -> AuditEntry:
    document = dict(document)
    document["id"] = str(document.pop("_id"))
    return AuditEntry.model_validate(document)
