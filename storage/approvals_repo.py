"""Approvals in MongoDB: one document per approval step of a run, decided by compare-and-set."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flows.approval_model import (
    CANCELLED,
    EXPIRED,
    ApprovalRecord,
    ApprovalResponse,
    Decision,
)
from storage.people_requests_repo import PeopleRequestsRepo


class ApprovalsRepo(PeopleRequestsRepo[ApprovalRecord]):
    """Implements `flows.approval_model.ApprovalStore` (the shared part:
    `storage.people_requests_repo`)."""

    collection_name = "approvals"
    people_field = "approvers"
    record_type = ApprovalRecord

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
        current: ApprovalRecord | None = None,
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
        condition = {
            "_id": approval_id,
            "status": "pending",
            "version": version,
            "approvers": response.user,
            "responses.user": {"$ne": response.user},
        }
        if (
            decision is None
            or current is None
            or (current.id, current.version)
            != (
                approval_id,
                version,
            )
        ):
            return await self._compare_and_set(condition, update)
        # Decided from `current`: the write made it exactly `current` plus this update
        # (a decided approval takes no other response), so no read on the click's way to
        # the run.
        result = await self.collection.update_one(condition, update)
        if result.matched_count != 1:
            return None
        return _decided(current, response, decision)

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

    async def pending_for(self, team_id: str, user: str) -> list[ApprovalRecord]:
        records = await self._pending_for(team_id, user)
        # Those this person answered already are left out here, not in the query.
        return [r for r in records if all(x.user != user for x in r.responses)]

    entry_fields = {"created_at": 1, "responses.user": 1}

    def _still_waits(self, entry: dict[str, Any], user: str) -> bool:
        # Not answered by this person yet.
        return all(r.get("user") != user for r in entry.get("responses") or ())

    async def unresumed(self) -> list[ApprovalRecord]:
        cursor = self.collection.find({"status": "decided", "resumed": False})
        return [self._record(document) async for document in cursor]


def _as_stored(at: datetime) -> datetime:
    """`at` as it reads back from MongoDB (UTC, milliseconds)."""
    utc = at.astimezone(timezone.utc) if at.tzinfo else at.replace(tzinfo=timezone.utc)
    return utc.replace(microsecond=utc.microsecond // 1000 * 1000)


def _decided(
    current: ApprovalRecord, response: ApprovalResponse, decision: Decision
) -> ApprovalRecord:
    """`current` with `response` added and `decision` set, as `get` would read it now."""
    stored = response.model_copy(update={"at": _as_stored(response.at)})
    return current.model_copy(
        update={
            "responses": [*current.responses, stored],
            "version": current.version + 1,
            "status": "decided",
            "outcome": decision.outcome,
            "option": decision.option,
            "responder": decision.responder,
            "comment": decision.comment,
            "decided_at": _as_stored(decision.at),
        }
    )
