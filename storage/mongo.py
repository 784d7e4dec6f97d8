"""The MongoDB connection (motor) and the repositories, one per aggregate."""

from __future__ import annotations

import logging
from typing import Any, Protocol

from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase
from pymongo.errors import PyMongoError

log = logging.getLogger(__name__)


class Repository(Protocol):
    async def ensure_indexes(self) -> None: ...


class Storage:
    """Owns the client; repositories are attributes so wiring stays explicit."""

    def __init__(self, uri: str, db_name: str) -> None:
        # 5 s to find a server, unless the URI says (?serverSelectionTimeoutMS=…).
        timeout: dict[str, Any] = {}
        if "serverselectiontimeoutms=" not in uri.lower():
            timeout["serverSelectionTimeoutMS"] = 5000
        self.client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(
            uri, tz_aware=True, appname="flowbot", **timeout
        )
        self.db: AsyncIOMotorDatabase[dict[str, Any]] = self.client[db_name]
        self.repositories: list[Repository] = []

    def add(self, repository: Repository) -> None:
        self.repositories.append(repository)

    async def ensure_indexes(self) -> None:
        for repository in self.repositories:
            await repository.ensure_indexes()

    async def ping(self) -> bool:
        try:
            await self.db.command("ping")
            return True
        except PyMongoError as exc:
            log.warning("database ping failed: %s", type(exc).__name__)
            return False

    def close(self) -> None:
        self.client.close()
