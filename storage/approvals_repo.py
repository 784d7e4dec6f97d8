"""Approvals in MongoDB: one document per approval step of a run, decided by compare-and-set."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING
from pymongo.errors import DuplicateKeyError

from flows.approval_model import (
    CANCELLED,
    EXPIRED,
    ApprovalMessage,
    ApprovalRecord,
    ApprovalResponse,
    Decision,
)


def _document(record: ApprovalRecord) -> dict[str, Any]:
    document = record.model_dump(mode="python")
    document["_id"] = document.pop("id")
    return document


def _record(document: dict[str, Any]) -> ApprovalRecord:
    document = dict(document)
    document["id"] = document.pop("_id")
    return ApprovalRecord.model_validate(document)


class ApprovalsRepo:
    """Implements `flows.approval_model.ApprovalStore`."""

    def __init__(self, db: AsyncIOMotorDatabase[dict[str, Any]]) -> None:
        self.collection = db["approvals"]

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
                ("approvers", ASCENDING),
                ("requested", ASCENDING),
            ],
            name="pending_for",
        )
        await self.collection.create_index([("status", ASCENDING), ("resumed", ASCENDING)])

    async def create(self, record: ApprovalRecord) -> ApprovalRecord:
        try:
            await self.collection.insert_one(_document(record))
        except DuplicateKeyError:
            existing = await self.get_for_step(record.run_id, record.step_id)
            if existing is None:  # pragma: no cover - the duplicate was on _id itself
                raise
            return existing
        return record

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        document = await self.collection.find_one({"_id": approval_id})
        return _record(document) if document else None

    async def get_for_step(self, run_id: str, step_id: str) -> ApprovalRecord | None:
        document = await self.collection.find_one({"run_id": run_id, "step_id": step_id})
        return _record(document) if document else None

    async def _compare_and_set(
        self, condition: dict[str, Any], update: dict[str, Any]
    ) -> ApprovalRecord | None:
        """`update_one` with the expected state in the filter (the `_id` serves it), then a
        read by `_id`: `find_one_and_update` makes the embedded server scan the collection.
        The read may show a later response too: never an earlier state than ours."""
        result = await self.collection.update_one(condition, update)
        if result.matched_count != 1:
            return None
        return await self.get(str(condition["_id"]))

    async def add_response(
        self,
        approval_id: str,
        version: int,
        response: ApprovalResponse,
        decision: Decision | None,
    ) -> ApprovalRecord | None:
        update: dict[str, Any] = {
            "$push": {"responses": response.model_dump(mode="python")},
            "$inc": {"version": 1},
        }
        if decision is not None:
            update["$set"] = {
                "status": "decided",
                "outcome": decision.outcome,
                "option": decision.option,
                "responder": decision.responder,
                "comment": decision.comment,
                "decided_at": decision.at,
            }
        return await self._compare_and_set(
            {
                "_id": approval_id,
                "status": "pending",
                "version": version,
                "approvers": response.user,
                "responses.user": {"$ne": response.user},
            },
            update,
        )

    async def expire(self, approval_id: str, at: datetime) -> ApprovalRecord | None:
        return await self._compare_and_set(
            {"_id": approval_id, "status": "pending"},
            {
                "$set": {
                    "status": "decided",
                    "outcome": EXPIRED,
                    "option": None,
                    "responder": None,
                    "comment": None,
                    "decided_at": at,
                },
                "$inc": {"version": 1},
            },
        )

    async def cancel(
        self, approval_id: str, at: datetime, reason: str, by: str | None
    ) -> ApprovalRecord | None:
        return await self._compare_and_set(
            {"_id": approval_id, "status": "pending"},
            {
                "$set": {
                    "status": "cancelled",
                    "outcome": CANCELLED,
                    "cancel_reason": reason,
                    "cancelled_by": by,
                    "decided_at": at,
                },
                "$inc": {"version": 1},
            },
        )

    async def pending_of_run(self, run_id: str) -> list[ApprovalRecord]:
        # The (run_id, step_id) index serves this.
        # `run_id` alone leads the (run_id, step_id) index; the status is checked here.
        cursor = self.collection.find({"run_id": run_id})
        records = [_record(document) async for document in cursor]
        return [record for record in records if record.status == "pending"]

    async def set_messages(self, approval_id: str, messages: Sequence[ApprovalMessage]) -> None:
        await self.collection.update_one(
            {"_id": approval_id},
            {
                "$set": {
                    "messages": [m.model_dump(mode="python") for m in messages],
                    "requested": True,
                }
            },
        )

    async def mark_reminded(self, approval_id: str) -> bool:
        result = await self.collection.update_one(
            {"_id": approval_id, "status": "pending", "reminded": False},
            {"$set": {"reminded": True}},
        )
        return result.modified_count == 1

    async def mark_resumed(self, approval_id: str) -> None:
        await self.collection.update_one({"_id": approval_id}, {"$set": {"resumed": True}})

    async def pending_for(self, team_id: str, user: str) -> list[ApprovalRecord]:
        cursor = self.collection.find(
            {"team_id": team_id, "status": "pending", "approvers": user, "requested": True}
        )
        records = [_record(document) async for document in cursor]
        # Those this person answered already are left out here, not in the query.
        records = [r for r in records if all(x.user != user for x in r.responses)]
        return sorted(records, key=lambda record: record.created_at)

    async def unresumed(self) -> list[ApprovalRecord]:
        cursor = self.collection.find({"status": "decided", "resumed": False})
        return [_record(document) async for document in cursor]
