"""The sharing stores: audit trail, My buttons, access requests, workspace policy."""

from __future__ import annotations

from datetime import datetime

from flows.records import MessageRef
from flows.sharing.model import (
    AccessRequest,
    AuditEntry,
    ButtonState,
    ButtonStatus,
    RequestStatus,
    WorkspacePolicy,
)
from flows.testing.memory.plain import limited


class MemoryAuditStore:
    """`flows.sharing.ports.AuditStore` in memory (MongoDB: `storage.audit_repo`)."""

    def __init__(self) -> None:
        self._entries: dict[str, AuditEntry] = {}

    async def add(self, entry: AuditEntry) -> None:
        if entry.id in self._entries:
            raise ValueError(f"audit entry {entry.id} exists already")
        self._entries[entry.id] = entry.model_copy()

    async def for_flow(self, team_id: str, flow_id: str, limit: int = 20) -> list[AuditEntry]:
        found = [e for e in self._entries.values() if e.team_id == team_id and e.flow_id == flow_id]
        # Newest first; entries of the same instant by id, descending.
        found.sort(key=lambda e: (e.at, e.id), reverse=True)
        return [e.model_copy() for e in limited(found, limit)]


class MemoryButtonStore:
    """`flows.sharing.ports.ButtonStore` in memory (MongoDB: `storage.buttons_repo`)."""

    def __init__(self) -> None:
        self._states: dict[tuple[str, str, str], ButtonState] = {}

    async def states(self, team_id: str, user_id: str) -> dict[str, ButtonState]:
        return {
            flow_id: state.model_copy()
            for (team, user, flow_id), state in self._states.items()
            if team == team_id and user == user_id
        }

    async def set_status(
        self, team_id: str, user_id: str, flow_id: str, status: ButtonStatus, at: datetime
    ) -> None:
        self._states[(team_id, user_id, flow_id)] = ButtonState(
            team_id=team_id, user_id=user_id, flow_id=flow_id, status=status, updated_at=at
        )

    async def forget(self, team_id: str, flow_id: str, user_ids: list[str]) -> None:
        """Make the button new again for these people (removed ones only)."""
        for user_id in user_ids:
            key = (team_id, user_id, flow_id)
            state = self._states.get(key)
            if state is not None and state.status == "removed":
                del self._states[key]


class MemoryAccessRequestStore:
    """`flows.sharing.ports.AccessRequestStore` in memory (MongoDB: `storage.buttons_repo`)."""

    def __init__(self) -> None:
        self._requests: dict[str, AccessRequest] = {}

    async def create(self, request: AccessRequest) -> None:
        if request.id in self._requests:
            raise ValueError(f"access request {request.id} exists already")
        self._requests[request.id] = request.model_copy(deep=True)

    async def get(self, team_id: str, request_id: str) -> AccessRequest | None:
        request = self._requests.get(request_id)
        if request is None or request.team_id != team_id:
            return None
        return request.model_copy(deep=True)

    async def pending(self, team_id: str, flow_id: str, requester: str) -> AccessRequest | None:
        found = next(
            (
                r
                for r in self._requests.values()
                if r.team_id == team_id
                and r.flow_id == flow_id
                and r.requester == requester
                and r.status == "pending"
            ),
            None,
        )
        return found.model_copy(deep=True) if found is not None else None

    async def add_message(self, request_id: str, ref: MessageRef) -> None:
        request = self._requests.get(request_id)
        if request is not None:
            request.messages.append(ref.model_copy())

    async def decide(
        self, team_id: str, request_id: str, status: RequestStatus, decided_by: str, at: datetime
    ) -> AccessRequest | None:
        """Pending → decided, once: a second click or a racing owner gets None."""
        request = self._requests.get(request_id)
        if request is None or request.team_id != team_id or request.status != "pending":
            return None
        request.status = status
        request.decided_by = decided_by
        request.decided_at = at
        return request.model_copy(deep=True)


class MemoryPolicyStore:
    """`flows.sharing.ports.PolicyStore` in memory (MongoDB: `storage.workspace_repo`)."""

    def __init__(self) -> None:
        self._policies: dict[str, WorkspacePolicy] = {}

    async def get(self, team_id: str) -> WorkspacePolicy:
        policy = self._policies.get(team_id)
        return policy.model_copy(deep=True) if policy else WorkspacePolicy(team_id=team_id)

    async def put(self, policy: WorkspacePolicy) -> None:
        self._policies[policy.team_id] = policy.model_copy(deep=True)
