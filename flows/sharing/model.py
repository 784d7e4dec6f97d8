"""What sharing stores and what its use cases return: plain data, worded in `cards.sharing`."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from pydantic import BaseModel, Field

from flows.permissions import Access
from flows.records import FlowRecord, MessageRef, Role

AuditKind = Literal[
    "shared",
    "role_changed",
    "unshared",
    "access_requested",
    "access_approved",
    "access_denied",
    "creators_changed",
]
ButtonStatus = Literal["added", "removed"]
RequestStatus = Literal["pending", "approved", "denied"]
# Why one principal of a share / unshare was left out (the others still changed).
PrincipalRefusal = Literal[
    "is_creator",  # sharing with the creator: they always own the flow
    "cannot_add",
    "creator_unremovable",
    "not_shared",  # unsharing someone who is not on the list
    "cannot_remove",
]


# ---------------------------------------------------------------------- stored records


class AuditEntry(BaseModel):
    """One sharing change: who did what to whom, when. flow_id None: workspace-wide."""

    id: str
    team_id: str
    flow_id: str | None = None
    flow_name: str | None = None
    at: datetime
    actor: str
    kind: AuditKind
    principal: str | None = None
    role: Role | None = None
    previous_role: Role | None = None
    detail: str | None = None


class ButtonState(BaseModel):
    team_id: str
    user_id: str
    flow_id: str
    status: ButtonStatus
    updated_at: datetime


class AccessRequest(BaseModel):
    id: str
    team_id: str
    flow_id: str
    flow_name: str
    requester: str
    status: RequestStatus = "pending"
    created_at: datetime
    decided_by: str | None = None
    decided_at: datetime | None = None
    # The owners' DMs carrying Approve / Deny, updated once decided.
    messages: list[MessageRef] = Field(default_factory=list)


class WorkspacePolicy(BaseModel):
    """creators None: everyone may create flows; else these users, groups and channels."""

    team_id: str
    creators: list[str] | None = None
    updated_by: str | None = None
    updated_at: datetime | None = None


# ---------------------------------------------------------------------- results


@dataclass(frozen=True)
class ShareChange:
    principal: str
    role: Role
    previous_role: Role | None = None


@dataclass(frozen=True)
class ShareResult:
    flow: FlowRecord
    role: Role
    added: list[ShareChange]
    changed: list[ShareChange]
    unchanged: list[str]
    refused: list[tuple[str, PrincipalRefusal]]


@dataclass(frozen=True)
class UnshareResult:
    flow: FlowRecord
    removed: list[ShareChange]
    refused: list[tuple[str, PrincipalRefusal]]


@dataclass(frozen=True)
class ShareLine:
    """One row of `/flow users`: the creator or a share, groups with their members."""

    principal: str
    kind: str  # user | group | channel
    role: Literal["creator", "owner", "runner"]
    added_by: str | None
    added_at: datetime | None
    members: tuple[str, ...] | None
    removable: bool


@dataclass(frozen=True)
class UsersView:
    flow: FlowRecord
    viewer: str
    access: Access
    lines: list[ShareLine]
    audit: list[AuditEntry]


@dataclass(frozen=True)
class ButtonItem:
    flow: FlowRecord
    access: Access
    status: Literal["added", "new", "removed"]


@dataclass(frozen=True)
class MyButtons:
    added: list[ButtonItem]
    new: list[ButtonItem]
    removed: list[ButtonItem]

    @property
    def banner(self) -> bool:
        """New buttons are available (shared, neither added nor removed yet)."""
        return bool(self.new)


@dataclass(frozen=True)
class LinkOpened:
    """A click on a link's Run button: run it, or offer to request access."""

    flow: FlowRecord
    may_run: bool


@dataclass(frozen=True)
class LinkPosted:
    flow: FlowRecord
    channel: str  # where it was posted (as Slack answered)
    message: MessageRef


@dataclass(frozen=True)
class RequestResult:
    flow: FlowRecord
    request: AccessRequest | None
    already_allowed: bool = False
    already_pending: bool = False
    owners_told: int = 0


@dataclass(frozen=True)
class DecisionResult:
    request: AccessRequest
    flow: FlowRecord | None
    already_decided: bool = False


def default_role(flow: FlowRecord) -> Role:
    """Run-only for buttons (instant flows), co-owner otherwise (SPEC §9)."""
    return "runner" if flow.kind == "instant" else "owner"
