"""Slack installations and OAuth states in MongoDB (many workspaces, OAuth v2).

Documents hold sealed text only (the tokens are encrypted by the caller,
`adapters.installation_store`); this repository knows nothing of Slack. States expire
through a TTL index; `consume_state` also refuses an expired one MongoDB has not yet
removed (the TTL monitor runs about once a minute)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

LATEST = "*"  # the user slot of a workspace's latest installation


class InstallationsRepo:
    """Implements `flows.workspace_context.InstallationRecords`."""

    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.bots = db["slack_bots"]
        self.installations = db["slack_installations"]
        self.states = db["slack_oauth_states"]

    async def ensure_indexes(self) -> None:
        await self.installations.create_index([("key", ASCENDING), ("user", ASCENDING)])
        await self.states.create_index("expires_at", expireAfterSeconds=0)

    async def save_bot(self, key: str, sealed: str) -> None:
        await self.bots.replace_one({"_id": key}, {"_id": key, "sealed": sealed}, upsert=True)

    async def find_bot(self, key: str) -> str | None:
        document = await self.bots.find_one({"_id": key})
        return str(document["sealed"]) if document else None

    async def delete_bot(self, key: str) -> None:
        await self.bots.delete_one({"_id": key})

    async def save_installation(self, key: str, user: str | None, sealed: str) -> None:
        slot = user or LATEST
        document = {"_id": f"{key}|{slot}", "key": key, "user": slot, "sealed": sealed}
        await self.installations.replace_one({"_id": document["_id"]}, document, upsert=True)

    async def find_installation(self, key: str, user: str | None) -> str | None:
        document = await self.installations.find_one({"_id": f"{key}|{user or LATEST}"})
        return str(document["sealed"]) if document else None

    async def delete_installations(self, key: str, user: str | None) -> None:
        if user is None:
            await self.installations.delete_many({"key": key})
        else:
            await self.installations.delete_one({"_id": f"{key}|{user}"})

    async def issue_state(self, state: str, expires_at: datetime) -> None:
        try:
            await self.states.insert_one({"_id": state, "expires_at": expires_at})
        except DuplicateKeyError:  # a random state twice: refuse rather than share it
            raise ValueError("state already issued") from None

    async def consume_state(self, state: str, now: datetime) -> bool:
        document = await self.states.find_one_and_delete({"_id": state})
        return document is not None and _aware(document["expires_at"]) > now


def _aware(moment: datetime) -> datetime:
    return moment if moment.tzinfo else moment.replace(tzinfo=UTC)
