"""Per-person state the bot keeps (collection `users`): for now, whether they saw the welcome."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase


class MongoUserStore:
    """Implements `flows.catalog.UserStore`. One document per (team, user)."""

    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.users = db["users"]

    async def ensure_indexes(self) -> None:
        # _id is "<team>:<user>", so it is unique already; nothing else is queried.
        return None

    @staticmethod
    def _key(team_id: str, user_id: str) -> str:
        return f"{team_id}:{user_id}"

    async def has_seen_welcome(self, team_id: str, user_id: str) -> bool:
        doc = await self.users.find_one(
            {"_id": self._key(team_id, user_id)}, {"welcome_seen_at": 1}
        )
        return bool(doc and doc.get("welcome_seen_at"))

    async def mark_welcome_seen(self, team_id: str, user_id: str, at: datetime) -> None:
        await self.users.update_one(
            {"_id": self._key(team_id, user_id)},
            {
                "$setOnInsert": {"team_id": team_id, "user_id": user_id, "created_at": at},
                "$min": {"welcome_seen_at": at},
            },
            upsert=True,
        )
