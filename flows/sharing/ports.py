"""What sharing needs from the outside: its stores (`storage/`) and a notifier (`adapters/`)."""

from __future__ import annotations

from datetime import datetime
from typing import Protocol

from flows.records import FlowRecord, MessageRef, Role, Share
from flows.sharing.model import (
    AccessRequest,
    AuditEntry,
    ButtonState,
    ButtonStatus,
    RequestStatus,
    WorkspacePolicy,
)


class SharedFlowStore(Protocol):
    """The part of `flows.catalog.FlowStore` sharing needs (storage.flows_repo has it)."""

    async def get(self, team_id: str, flow_id: str) -> FlowRecord | None: ...

    async def get_by_name(self, team_id: str, name: str) -> FlowRecord | None: ...

    async def list_candidates(self, team_id: str, user_id: str) -> list[FlowRecord]: ...

    async def set_shares(
        self,
        team_id: str,
        flow_id: str,
        shares: list[Share],
        expected: list[Share],
    ) -> FlowRecord | None: ...


class AuditStore(Protocol):
    async def add(self, entry: AuditEntry) -> None: ...

    async def for_flow(self, team_id: str, flow_id: str, limit: int = 20) -> list[AuditEntry]: ...


class ButtonStore(Protocol):
    async def states(self, team_id: str, user_id: str) -> dict[str, ButtonState]: ...

    async def set_status(
        self, team_id: str, user_id: str, flow_id: str, status: ButtonStatus, at: datetime
    ) -> None: ...

    async def forget(self, team_id: str, flow_id: str, user_ids: list[str]) -> None: ...


class AccessRequestStore(Protocol):
    async def create(self, request: AccessRequest) -> None: ...

    async def get(self, team_id: str, request_id: str) -> AccessRequest | None: ...

    async def pending(self, team_id: str, flow_id: str, requester: str) -> AccessRequest | None: ...

    async def add_message(self, request_id: str, ref: MessageRef) -> None: ...

    async def decide(
        self, team_id: str, request_id: str, status: RequestStatus, decided_by: str, at: datetime
    ) -> AccessRequest | None: ...


class PolicyStore(Protocol):
    async def get(self, team_id: str) -> WorkspacePolicy: ...

    async def put(self, policy: WorkspacePolicy) -> None: ...


class SharingNotifier(Protocol):
    """How people hear about sharing (Slack messages: `adapters.sharing_notifier`)."""

    async def button_shared(
        self, recipient: str, flow: FlowRecord, actor: str, role: Role, via: str | None
    ) -> None:
        """`recipient` is a user (a DM) or a channel (one post there); `via` is the group
        or channel the share names when the recipient got it through one."""

    async def link_shared(self, channel: str, flow: FlowRecord, actor: str) -> MessageRef | None:
        """Post the flow's link (a Run button) in `channel`; None if it could not be."""

    async def access_requested(
        self, owner: str, request: AccessRequest, flow: FlowRecord
    ) -> MessageRef | None: ...

    async def access_decided(self, request: AccessRequest, flow: FlowRecord) -> None: ...

    async def request_closed(
        self, ref: MessageRef, request: AccessRequest, flow: FlowRecord
    ) -> None: ...
