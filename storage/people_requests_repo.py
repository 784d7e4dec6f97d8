"""What the approvals' and the asks' collections share (`storage.approvals_repo`,
`storage.asks_repo`): one document per (run, step) (a unique index; a second insert
finds the first), reads by id and by step, the posted messages, the reminder flipped
once, the resumed flag, and a person's pending list served from one index.

Each repository keeps its own compare-and-sets (responses and versions; the answer)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Generic, TypeVar

from motor.motor_asyncio import AsyncIOMotorDatabase
from pydantic import BaseModel
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

M = TypeVar("M", bound=BaseModel)


class PeopleRequestsRepo(Generic[M]):
    """A collection of requests to people: `record_type` documents in `collection_name`,
    the people who may answer in the array field `people_field`."""

    collection_name = ""
    people_field = ""
    record_type: type[M]

    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.collection = db[self.collection_name]

    def _document(self, record: M) -> dict[str, Any]:
        document = record.model_dump(mode="python")
        document["_id"] = document.pop("id")
        return document

    def _record(self, document: dict[str, Any]) -> M:
        document = dict(document)
        document["id"] = document.pop("_id")
        return self.record_type.model_validate(document)

    async def ensure_indexes(self) -> None:
        await self.collection.create_index(
            [("run_id", ASCENDING), ("step_id", ASCENDING)], unique=True
        )
        # Pending for a person: every field of the query leads this index (equality
        # only), which is the shape the embedded server serves from an index.
        await self.collection.create_index(
            [
                ("team_id", ASCENDING),
                ("status", ASCENDING),
                (self.people_field, ASCENDING),
                ("requested", ASCENDING),
            ],
            name="pending_for",
        )
        await self.collection.create_index([("status", ASCENDING), ("resumed", ASCENDING)])

    async def create(self, record: M) -> M:
        try:
            await self.collection.insert_one(self._document(record))
        except DuplicateKeyError:
            existing = await self.get_for_step(record.run_id, record.step_id)  # type: ignore[attr-defined]
            if existing is None:  # pragma: no cover - the duplicate was on _id itself
                raise
            return existing
        return record

    async def get(self, record_id: str) -> M | None:
        document = await self.collection.find_one({"_id": record_id})
        return self._record(document) if document else None

    async def get_for_step(self, run_id: str, step_id: str) -> M | None:
        document = await self.collection.find_one({"run_id": run_id, "step_id": step_id})
        return self._record(document) if document else None

    async def pending_of_run(self, run_id: str) -> list[M]:
        # `run_id` alone leads the (run_id, step_id) index; the status is checked here.
        cursor = self.collection.find({"run_id": run_id})
        records = [self._record(document) async for document in cursor]
        return [record for record in records if record.status == "pending"]  # type: ignore[attr-defined]

    async def set_messages(self, record_id: str, messages: Sequence[BaseModel]) -> None:
        await self.collection.update_one(
            {"_id": record_id},
            {
                "$set": {
                    "messages": [m.model_dump(mode="python") for m in messages],
                    "requested": True,
                }
            },
        )

    async def mark_reminded(self, record_id: str) -> bool:
        result = await self.collection.update_one(
            {"_id": record_id, "status": "pending", "reminded": False},
            {"$set": {"reminded": True}},
        )
        return result.modified_count == 1

    async def mark_resumed(self, record_id: str) -> None:
        await self.collection.update_one({"_id": record_id}, {"$set": {"resumed": True}})

    # What `pending_page` reads of every pending entry: enough to order and count them
    # (and, for approvals, to leave out those the person answered already).
    entry_fields: dict[str, int] = {"created_at": 1}

    def _still_waits(self, entry: dict[str, Any], user: str) -> bool:
        """Does this pending entry (`entry_fields`) still wait for `user`? (Checked here:
        SecantusDB serves no index to a filter with a field outside the index.)"""
        return True

    async def pending_page(self, team_id: str, user: str, limit: int) -> tuple[list[M], int]:
        """The oldest `limit` and how many in all: every entry is read by the
        `pending_for` index with only `entry_fields`, then the page's documents by `_id`
        (only those are sent whole and loaded)."""
        query: dict[str, Any] = {"team_id": team_id, "status": "pending"}
        query |= {self.people_field: user, "requested": True}
        entries = [
            entry
            async for entry in self.collection.find(query, projection=self.entry_fields)
            if self._still_waits(entry, user)
        ]
        entries.sort(key=lambda entry: (entry["created_at"], entry["_id"]))
        page = [entry["_id"] for entry in entries[: max(limit, 0)]]
        if not page:
            return [], len(entries)
        cursor = self.collection.find({"_id": {"$in": page}})
        found = {document["_id"]: self._record(document) async for document in cursor}
        # One decided in between is left out (the next refresh counts it out too).
        records = [found[i] for i in page if i in found and found[i].status == "pending"]  # type: ignore[attr-defined]
        return records, len(entries)

    async def _pending_for(self, team_id: str, user: str) -> list[M]:
        """Pending and posted, `user` among the people (served by the `pending_for` index),
        oldest first."""
        cursor = self.collection.find(
            {"team_id": team_id, "status": "pending", self.people_field: user, "requested": True}
        )
        records = [self._record(document) async for document in cursor]
        return sorted(records, key=lambda record: record.created_at)  # type: ignore[attr-defined]
