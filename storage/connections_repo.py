"""Connections in MongoDB: one document each, holding ciphertext and a masked hint only."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from flows.connections import ConnectionRecord, DuplicateConnectionName


def _name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


def _document(record: ConnectionRecord) -> dict[str, Any]:
    document = record.model_dump(mode="python")
    document["_id"] = document.pop("id")
    document["name_key"] = _name_key(record.name)
    return document


def _record(document: dict[str, Any]) -> ConnectionRecord:
    document = dict(document)
    document["id"] = document.pop("_id")
    document.pop("name_key", None)
    return ConnectionRecord.model_validate(document)


class ConnectionsRepo:
    """`flows.connections.ConnectionStore` on the `connections` collection."""

    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.collection = db["connections"]

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("team_id", ASCENDING), ("owner", ASCENDING), ("name_key", ASCENDING)], unique=True
        )
        await self.collection.create_index([("key_id", ASCENDING)])

    async def insert(self, record: ConnectionRecord) -> None:
        try:
            await self.collection.insert_one(_document(record))
        except DuplicateKeyError:
            raise DuplicateConnectionName(record.name) from None

    async def get(self, team_id: str, connection_id: str) -> ConnectionRecord | None:
        document = await self.collection.find_one({"_id": connection_id, "team_id": team_id})
        return _record(document) if document else None

    async def get_many(self, team_id: str, ids: Sequence[str]) -> list[ConnectionRecord]:
        cursor = self.collection.find({"_id": {"$in": list(ids)}, "team_id": team_id})
        return [_record(document) async for document in cursor]

    async def list_by_owner(self, team_id: str, owner: str) -> list[ConnectionRecord]:
        cursor = self.collection.find({"team_id": team_id, "owner": owner}).sort(
            "name_key", ASCENDING
        )
        return [_record(document) async for document in cursor]

    async def find_by_name(self, team_id: str, owner: str, name: str) -> ConnectionRecord | None:
        document = await self.collection.find_one(
            {"team_id": team_id, "owner": owner, "name_key": _name_key(name)}
        )
        return _record(document) if document else None

    async def replace(self, record: ConnectionRecord) -> None:
        try:
            await self.collection.replace_one(
                {"_id": record.id, "team_id": record.team_id}, _document(record)
            )
        except DuplicateKeyError:
            raise DuplicateConnectionName(record.name) from None

    async def delete(self, team_id: str, connection_id: str) -> bool:
        result = await self.collection.delete_one({"_id": connection_id, "team_id": team_id})
        return result.deleted_count == 1

    async def stale_keys(self, current_key_id: str) -> list[ConnectionRecord]:
        cursor = self.collection.find({"key_id": {"$ne": current_key_id}})
        return [_record(document) async for document in cursor]

    async def set_ciphertext(
        self, connection_id: str, old_key_id: str, ciphertext: str, key_id: str
    ) -> bool:
        result = await self.collection.update_one(
            {"_id": connection_id, "key_id": old_key_id},
            {"$set": {"ciphertext": ciphertext, "key_id": key_id}},
        )
        return result.modified_count == 1
