"""Workspace-wide policy set by admins: who may create flows."""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase

from flows.sharing.model import WorkspacePolicy


class WorkspaceRepo:
    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.collection = db["workspaces"]

    async def ensure_indexes(self) -> None:
        return None  # keyed by _id = team_id

    async def get(self, team_id: str) -> WorkspacePolicy:
        document = await self.collection.find_one({"_id": team_id})
        if document is None:
            return WorkspacePolicy(team_id=team_id)
        document = dict(document)
        document["team_id"] = str(document.pop("_id"))
        return WorkspacePolicy.model_validate(document)

    async def put(self, policy: WorkspacePolicy) -> None:
        document = policy.model_dump(mode="python")
        team_id = document.pop("team_id")
        await self.collection.replace_one({"_id": team_id}, document, upsert=True)
