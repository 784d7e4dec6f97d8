"""My buttons (what each person added or removed) and requests for access to a button."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING, ReturnDocument

from flows.records import MessageRef
from flows.sharing.model import AccessRequest, ButtonState, ButtonStatus, RequestStatus


class ButtonsRepo:
    """One document per (team, user, flow) the person acted on; no document means new."""

    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.collection = db["my_buttons"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("team_id", ASCENDING), ("user_id", ASCENDING), ("flow_id", ASCENDING)],
            unique=True,
        )
        await self.collection.create_index([("team_id", ASCENDING), ("flow_id", ASCENDING)])

    async def states(self, team_id: str, user_id: str) -> dict[str, ButtonState]:
        cursor = self.collection.find({"team_id": team_id, "user_id": user_id})
        out: dict[str, ButtonState] = {}
        async for document in cursor:
            document.pop("_id", None)
            state = ButtonState.model_validate(document)
            out[state.flow_id] = state
        return out

    async def set_status(
        self, team_id: str, user_id: str, flow_id: str, status: ButtonStatus, at: datetime
    ) -> None:
        await self.collection.update_one(
            {"team_id": team_id, "user_id": user_id, "flow_id": flow_id},
            {"$set": {"status": status, "updated_at": at}},
            upsert=True,
        )

    async def forget(self, team_id: str, flow_id: str, user_ids: list[str]) -> None:
        """Make the button new again for these people (shared with them once more)."""
        if user_ids:
            await self.collection.delete_many(
                {
                    "team_id": team_id,
                    "flow_id": flow_id,
                    "user_id": {"$in": user_ids},
                    "status": "removed",
                }
            )


class AccessRequestRepo:
    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.collection = db["access_requests"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [
                ("team_id", ASCENDING),
                ("flow_id", ASCENDING),
                ("requester", ASCENDING),
                ("status", ASCENDING),
            ]
        )

    async def create(self, request: AccessRequest) -> None:
        document = request.model_dump(mode="python")
        document["_id"] = document.pop("id")
        await self.collection.insert_one(document)

    async def get(self, team_id: str, request_id: str) -> AccessRequest | None:
        document = await self.collection.find_one({"_id": request_id, "team_id": team_id})
        return _request(document) if document else None

    async def pending(self, team_id: str, flow_id: str, requester: str) -> AccessRequest | None:
        document = await self.collection.find_one(
            {"team_id": team_id, "flow_id": flow_id, "requester": requester, "status": "pending"}
        )
        return _request(document) if document else None

    async def add_message(self, request_id: str, ref: MessageRef) -> None:
        await self.collection.update_one(
            {"_id": request_id}, {"$push": {"messages": ref.model_dump(mode="python")}}
        )

    async def decide(
        self,
        team_id: str,
        request_id: str,
        status: RequestStatus,
        decided_by: str,
        at: datetime,
    ) -> AccessRequest | None:
        """Pending → decided, once: a second click or a racing owner gets None."""
        document = await self.collection.find_one_and_update(
            {"_id": request_id, "team_id": team_id, "status": "pending"},
            {"$set": {"status": status, "decided_by": decided_by, "decided_at": at}},
            return_document=ReturnDocument.AFTER,
        )
        return _request(document) if document else None


def _request(document: dict[str, Any]) -> AccessRequest:
    document = dict(document)
    document["id"] = str(document.pop("_id"))
    return AccessRequest.model_validate(document)
