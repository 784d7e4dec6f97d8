"""`MemoryApprovalStore`: approvals decided by compare-and-set."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from flows.approval_model import (
    CANCELLED,
    EXPIRED,
    ApprovalMessage,
    ApprovalRecord,
    ApprovalResponse,
    Decision,
)


class MemoryApprovalStore:
    """`flows.approval_model.ApprovalStore` in memory (MongoDB: `storage.approvals_repo`)."""

    def __init__(self) -> None:
        self._records: dict[str, ApprovalRecord] = {}

    @staticmethod
    def _copy(record: ApprovalRecord | None) -> ApprovalRecord | None:
        return record.model_copy(deep=True) if record is not None else None

    def _pending(self, approval_id: str) -> ApprovalRecord | None:
        record = self._records.get(approval_id)
        return record if record is not None and record.status == "pending" else None

    async def create(self, record: ApprovalRecord) -> ApprovalRecord:
        # One approval per (run, step): a re-executed step finds the first one.
        existing = await self.get_for_step(record.run_id, record.step_id)
        if existing is not None:
            return existing
        self._records[record.id] = record.model_copy(deep=True)
        return record

    async def get(self, approval_id: str) -> ApprovalRecord | None:
        return self._copy(self._records.get(approval_id))

    async def get_for_step(self, run_id: str, step_id: str) -> ApprovalRecord | None:
        found = next(
            (r for r in self._records.values() if r.run_id == run_id and r.step_id == step_id),
            None,
        )
        return self._copy(found)

    async def add_response(
        self,
        approval_id: str,
        version: int,
        response: ApprovalResponse,
        decision: Decision | None,
    ) -> ApprovalRecord | None:
        record = self._pending(approval_id)
        if (
            record is None
            or record.version != version
            or response.user not in record.approvers
            or record.response_of(response.user) is not None
        ):
            return None
        record.responses.append(response.model_copy())
        record.version += 1
        if decision is not None:
            record.status = "decided"
            record.outcome = decision.outcome
            record.option = decision.option
            record.responder = decision.responder
            record.comment = decision.comment
            record.decided_at = decision.at
        return self._copy(record)

    async def expire(self, approval_id: str, at: datetime) -> ApprovalRecord | None:
        record = self._pending(approval_id)
        if record is None:
            return None
        record.status = "decided"
        record.outcome = EXPIRED
        record.option = record.responder = record.comment = None
        record.decided_at = at
        record.version += 1
        return self._copy(record)

    async def cancel(
        self, approval_id: str, at: datetime, reason: str, by: str | None
    ) -> ApprovalRecord | None:
        record = self._pending(approval_id)
        if record is None:
            return None
        record.status = "cancelled"
        record.outcome = CANCELLED
        record.cancel_reason = reason
        record.cancelled_by = by
        record.decided_at = at
        record.version += 1
        return self._copy(record)

    async def pending_of_run(self, run_id: str) -> list[ApprovalRecord]:
        return [
            r.model_copy(deep=True)
            for r in self._records.values()
            if r.run_id == run_id and r.status == "pending"
        ]

    async def set_messages(self, approval_id: str, messages: Sequence[ApprovalMessage]) -> None:
        record = self._records.get(approval_id)
        if record is not None:
            record.messages = [m.model_copy() for m in messages]
            record.requested = True

    async def mark_reminded(self, approval_id: str) -> bool:
        record = self._pending(approval_id)
        if record is None or record.reminded:
            return False
        record.reminded = True
        return True

    async def mark_resumed(self, approval_id: str) -> None:
        record = self._records.get(approval_id)
        if record is not None:
            record.resumed = True

    async def pending_for(self, team_id: str, user: str) -> list[ApprovalRecord]:
        found = [
            r
            for r in self._records.values()
            if r.team_id == team_id
            and r.status == "pending"
            and r.requested
            and user in r.approvers
            and r.response_of(user) is None
        ]
        found.sort(key=lambda r: r.created_at)
        return [r.model_copy(deep=True) for r in found]

    async def unresumed(self) -> list[ApprovalRecord]:
        return [
            r.model_copy(deep=True)
            for r in self._records.values()
            if r.status == "decided" and not r.resumed
        ]
