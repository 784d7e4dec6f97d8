"""Modal contexts (collection `modal_contexts`): MongoDB adapter of
`flows.modal_context.ModalContextStore`. One document per context, `_id` = its random id;
a TTL index drops it after `KEEP`."""

from __future__ import annotations

from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase

from flows.modal_context import KEEP, ModalContext

Doc = dict[str, Any]


class MongoModalContexts:
    def __init__(self, db: AsyncIOMotorDatabase[Doc]) -> None:
        self.collection = db["modal_contexts"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            "created_at", expireAfterSeconds=int(KEEP.total_seconds()), name="modal_contexts_ttl"
        )

    async def put(self, context: ModalContext) -> None:
        await self.collection.insert_one(
            {
                "_id": context.id,
                "team_id": context.team_id,
                "user_id": context.user_id,
                "kind": context.kind,
                "created_at": context.created_at,
                "response_url": context.response_url,
                "data": dict(context.data),
            }
        )

    async def get(
        self, context_id: str, team_id: str, user_id: str, kind: str
    ) -> ModalContext | None:
        doc = await self.collection.find_one(
            {"_id": context_id, "team_id": team_id, "user_id": user_id, "kind": kind}
        )
        if doc is None:
            return None
        return ModalContext(
            id=str(doc["_id"]),
            team_id=str(doc["team_id"]),
            user_id=str(doc["user_id"]),
            kind=str(doc["kind"]),
            created_at=doc["created_at"],
            response_url=str(doc.get("response_url") or ""),
            data={str(k): str(v) for k, v in (doc.get("data") or {}).items()},
        )
