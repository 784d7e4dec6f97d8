"""Cheap counts for monitoring (`flows.metrics.OperationalCounts`), read at scrape time.

Both queries are covered by indexes the runs and approvals repositories create
(`status` leads them), so a scrape costs two index counts."""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase


class MongoOperationalCounts:
    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.db = db

    async def ensure_indexes(self) -> None:
        """Nothing of its own: it reads the runs' and approvals' indexes."""

    async def waiting_runs(self) -> int:
        return int(await self.db["runs"].count_documents({"status": "waiting"}))

    async def pending_approvals(self) -> int:
        return int(await self.db["approvals"].count_documents({"status": "pending"}))
