"""Deliveries taken in (collection `deliveries`): one document per key, dropped by a TTL
index once a replay of it could no longer carry a valid signature."""

from __future__ import annotations

import logging
from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo.errors import DuplicateKeyError, PyMongoError

from flows.deliveries import KEEP

log = logging.getLogger(__name__)


class MongoDeliveryLog:
    """Implements `flows.deliveries.DeliveryLog`."""

    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.deliveries = db["deliveries"]

    async def ensure_indexes(self) -> None:
        await self.deliveries.create_index(
            "at", expireAfterSeconds=int(KEEP.total_seconds()), name="deliveries_ttl"
        )

    async def first_time(self, key: str, at: datetime) -> bool:
        try:
            await self.deliveries.insert_one({"_id": key, "at": at})
        except DuplicateKeyError:
            return False
        except PyMongoError as exc:
            # The database is away: take the delivery in (the work is what matters most;
            # the runs' own keys still stop a duplicated run).
            log.warning("delivery log unavailable (%s); taking %s in", type(exc).__name__, key)
        return True

    async def forget(self, key: str) -> None:
        try:
            await self.deliveries.delete_one({"_id": key})
        except PyMongoError as exc:
            log.warning("delivery log unavailable (%s); %s kept", type(exc).__name__, key)
