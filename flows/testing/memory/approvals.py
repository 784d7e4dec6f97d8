"""`MemoryApprovalStore`: approvals decided by compare-and-set."""

from __future__ import annotations

from datetime import datetime

from flows.approval_model import (
    CANCELLED,
    EXPIRED,
    ApprovalRecord,
    ApprovalResponse,
    Decision,
)
from flows.testing.memory.people_requests import MemoryPeopleRequests


class MemoryApprovalStore(MemoryPeopleRequests[ApprovalRecord]):
    """`flows.approval_model.ApprovalStore` in memory (MongoDB: `storage.approvals_repo`)."""

    def _waits_for(self, record: ApprovalRecord, user: str) -> bool:
        # Those this person answered already are left out.
        return user in record.approvers and record.response_of(user) is None

    async def add_response(
        self,
        approval_id: str,
        version: int,
        response: ApprovalResponse,
        decision: Decision | None,
        current: ApprovalRecord | None = None,
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

    async def unresumed(self) -> list[ApprovalRecord]:
        return [
            r.model_copy(deep=True)
            for r in self._records.values()
            if r.status == "decided" and not r.resumed
        ]
