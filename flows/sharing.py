"""Sharing (SPEC §4, §5): co-owners, run-only buttons, groups, admins, My buttons.

`SharingService` is what the sharing handlers call. Every decision goes through
`flows.permissions`; this module only applies the decisions and keeps their traces:

- `share` / `unshare` change `FlowRecord.shares` (without a new definition version) with a
  compare-and-swap on the list, write one audit entry per change and tell the recipients
  (through a `SharingNotifier`, implemented with Slack in `handlers.sharing`): a user gets
  a DM, every member of a user group gets a DM, a channel gets one post.
- My buttons: the instant flows someone may run that were shared with them (directly or
  through a group or channel), each "added", "removed" or still "new" (the App Home
  banner). Access is read live, so a button whose access went away disappears.
- Link buttons grant nothing: someone who may not run the flow can request access; every
  owner gets Approve / Deny, the first decision counts, approval adds the requester as a
  run-only user and the requester is told the answer.
- The workspace's creation policy: everyone, or listed users, groups and channels. Only
  workspace admins change it; a refused person is told to ask them.
"""

from __future__ import annotations

import asyncio
import logging
import random
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Literal, Protocol

from pydantic import BaseModel, Field

from flows.permissions import (
    Access,
    Action,
    allowed,
    is_principal,
    may_add,
    may_create_flows,
    may_remove,
    principal_kind,
    resolve_access,
)
from flows.ports import Clock, Directory, IdGenerator
from flows.records import FlowRecord, MessageRef, Role, Share

log = logging.getLogger(__name__)

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

# A share to a big user group DMs at most this many members (the rest see the banner).
MAX_GROUP_DMS = 200
# An access request DMs at most this many owners.
MAX_OWNER_DMS = 50
AUDIT_FOOTER = 5
# Compare-and-swap rounds: each round one racing writer wins, so this many racing changes
# of one flow's sharing list all land.
SHARE_RETRIES = 25


# ---------------------------------------------------------------------- records


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


# ---------------------------------------------------------------------- ports


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
    """How people hear about sharing (Slack messages, built in `handlers.sharing`)."""

    async def button_shared(
        self, recipient: str, flow: FlowRecord, actor: str, role: Role, via: str | None
    ) -> None:
        """`recipient` is a user (a DM) or a channel (one post there); `via` is the group
        or channel the share names when the recipient got it through one."""

    async def access_requested(
        self, owner: str, request: AccessRequest, flow: FlowRecord
    ) -> MessageRef | None: ...

    async def access_decided(self, request: AccessRequest, flow: FlowRecord) -> None: ...

    async def request_closed(
        self, ref: MessageRef, request: AccessRequest, flow: FlowRecord
    ) -> None: ...


# ---------------------------------------------------------------------- errors and results


def _shown(text: str) -> str:
    """Typed text echoed in a Slack message: its three control characters escaped."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SharingError(Exception):
    """A refused sharing operation; the message is meant for the person who asked."""


class UnknownFlow(SharingError):
    def __init__(self, ref: str) -> None:
        super().__init__(f"There is no flow named `{_shown(ref)}` in this workspace.")
        self.ref = ref


class NotAllowed(SharingError):
    pass


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
    refused: list[tuple[str, str]]  # (principal, why)


@dataclass(frozen=True)
class UnshareResult:
    flow: FlowRecord
    removed: list[ShareChange]
    refused: list[tuple[str, str]]


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


ROLE_LABELS: dict[str, str] = {"creator": "creator", "owner": "co-owner", "runner": "run-only"}


class SharingService:
    def __init__(
        self,
        flows: SharedFlowStore,
        audit: AuditStore,
        buttons: ButtonStore,
        requests: AccessRequestStore,
        policies: PolicyStore,
        directory: Directory,
        notifier: SharingNotifier,
        clock: Clock,
        ids: IdGenerator,
    ) -> None:
        self.flows = flows
        self.audit_store = audit
        self.buttons = buttons
        self.requests = requests
        self.policies = policies
        self.directory = directory
        self.notifier = notifier
        self.clock = clock
        self.ids = ids

    # ------------------------------------------------------------------ lookups

    async def find(self, team_id: str, ref: str) -> FlowRecord:
        ref = ref.strip()
        if not ref:
            raise UnknownFlow(ref)
        flow = await self.flows.get(team_id, ref) if " " not in ref else None
        flow = flow or await self.flows.get_by_name(team_id, ref)
        if flow is None:
            raise UnknownFlow(ref)
        return flow

    async def _authorize(
        self, team_id: str, user_id: str, ref: str, action: Action, refusal: str
    ) -> tuple[FlowRecord, Access]:
        """The flow if the user may do `action`. Someone who may not even see it (and is
        no admin) is told it does not exist, as the catalog does."""
        flow = await self.find(team_id, ref)
        access = await resolve_access(flow, user_id, self.directory)
        if not allowed(action, flow, access):
            if not allowed(Action.VIEW, flow, access) and not access.is_admin:
                raise UnknownFlow(ref)
            raise NotAllowed(refusal.format(name=flow.name))
        return flow, access

    # ------------------------------------------------------------------ share / unshare

    async def share(
        self,
        team_id: str,
        actor: str,
        ref: str,
        principals: Sequence[str],
        role: Role | None = None,
    ) -> ShareResult:
        flow, access = await self._authorize(
            team_id,
            actor,
            ref,
            Action.MANAGE_SHARING,
            "You can't share *{name}*: only its owners and workspace admins can.",
        )
        role = role or default_role(flow)
        if role == "runner" and flow.kind != "instant":
            raise SharingError(
                f"*{flow.name}* is a {flow.kind} flow: run-only sharing is for instant flows "
                "(buttons). Share it `as owner` to let people run it on demand."
            )
        wanted: list[str] = []
        refused: list[tuple[str, str]] = []
        for principal in dict.fromkeys(principals):
            if principal == flow.creator:
                refused.append((principal, "is the creator and always owns the flow"))
            elif not may_add(flow, access, principal, role, actor):
                refused.append((principal, "can't be added"))
            else:
                wanted.append(principal)
        result = await self._apply(
            flow, actor, wanted, role, kind_added="shared", detail=None, refused=refused
        )
        await self._tell_recipients(result.flow, actor, [*result.added, *result.changed])
        return result

    async def _apply(
        self,
        flow: FlowRecord,
        actor: str,
        principals: list[str],
        role: Role,
        *,
        kind_added: AuditKind,
        detail: str | None,
        refused: list[tuple[str, str]],
    ) -> ShareResult:
        """Add or re-role `principals`, compare-and-swap on the stored list."""
        for _ in range(SHARE_RETRIES):
            now = self.clock.now()
            by_principal = {s.principal: s for s in flow.shares}
            shares = list(flow.shares)
            added: list[ShareChange] = []
            changed: list[ShareChange] = []
            unchanged: list[str] = []
            for principal in principals:
                existing = by_principal.get(principal)
                if existing is not None and existing.role == role:
                    unchanged.append(principal)
                    continue
                share = Share(principal=principal, role=role, added_by=actor, added_at=now)
                if existing is None:
                    shares.append(share)
                    added.append(ShareChange(principal, role))
                else:
                    shares[shares.index(existing)] = share
                    changed.append(ShareChange(principal, role, existing.role))
            if not added and not changed:
                return ShareResult(flow, role, [], [], unchanged, refused)
            saved = await self.flows.set_shares(flow.team_id, flow.id, shares, flow.shares)
            if saved is not None:
                for change in added:
                    await self._audit(
                        saved, actor, kind_added, change.principal, change.role, None, detail
                    )
                for change in changed:
                    await self._audit(
                        saved,
                        actor,
                        "role_changed",
                        change.principal,
                        change.role,
                        change.previous_role,
                        detail,
                    )
                return ShareResult(saved, role, added, changed, unchanged, refused)
            flow = await self._reload(flow, actor)
        raise SharingError("The sharing list changed under us several times; try again.")

    async def _reload(self, flow: FlowRecord, actor: str) -> FlowRecord:
        """The flow as stored now (the list changed under us); the actor must still be
        allowed to manage its sharing."""
        await asyncio.sleep(random.uniform(0, 0.02))  # let racing writers spread out
        fresh = await self.flows.get(flow.team_id, flow.id)
        if fresh is None:
            raise UnknownFlow(flow.name)
        access = await resolve_access(fresh, actor, self.directory)
        if not allowed(Action.MANAGE_SHARING, fresh, access):
            raise NotAllowed(f"You can no longer change who *{fresh.name}* is shared with.")
        return fresh

    async def unshare(
        self, team_id: str, actor: str, ref: str, principals: Sequence[str]
    ) -> UnshareResult:
        flow, access = await self._authorize(
            team_id,
            actor,
            ref,
            Action.MANAGE_SHARING,
            "You can't change who *{name}* is shared with: only its owners and workspace "
            "admins can.",
        )
        for _ in range(SHARE_RETRIES):
            current = {s.principal: s for s in flow.shares}
            removed: list[ShareChange] = []
            refused: list[tuple[str, str]] = []
            for principal in dict.fromkeys(principals):
                if principal == flow.creator:
                    refused.append((principal, "is the creator and can never be removed"))
                elif principal not in current:
                    refused.append((principal, "isn't on the sharing list"))
                elif not may_remove(flow, access, principal):
                    refused.append((principal, "can't be removed"))
                else:
                    removed.append(ShareChange(principal, current[principal].role))
            if not removed:
                return UnshareResult(flow, [], refused)
            gone = {c.principal for c in removed}
            shares = [s for s in flow.shares if s.principal not in gone]
            saved = await self.flows.set_shares(flow.team_id, flow.id, shares, flow.shares)
            if saved is not None:
                for change in removed:
                    await self._audit(
                        saved, actor, "unshared", change.principal, previous_role=change.role
                    )
                return UnshareResult(saved, removed, refused)
            flow = await self._reload(flow, actor)
        raise SharingError("The sharing list changed under us several times; try again.")

    async def _audit(
        self,
        flow: FlowRecord,
        actor: str,
        kind: AuditKind,
        principal: str | None = None,
        role: Role | None = None,
        previous_role: Role | None = None,
        detail: str | None = None,
    ) -> None:
        entry = AuditEntry(
            id=self.ids.new_id("A"),
            team_id=flow.team_id,
            flow_id=flow.id,
            flow_name=flow.name,
            at=self.clock.now(),
            actor=actor,
            kind=kind,
            principal=principal,
            role=role,
            previous_role=previous_role,
            detail=detail,
        )
        await self.audit_store.add(entry)

    async def _tell_recipients(
        self, flow: FlowRecord, actor: str, changes: Iterable[ShareChange]
    ) -> None:
        """A user: a DM. A user group: a DM to each member. A channel: one post there."""
        told: set[str] = set()
        for change in changes:
            kind = principal_kind(change.principal)
            if kind == "channel":
                await self._notify(change.principal, flow, actor, change.role, change.principal)
                continue
            if kind == "group":
                members = await self.directory.usergroup_members(flow.team_id, change.principal)
                users = sorted(members)[:MAX_GROUP_DMS]
                via: str | None = change.principal
            else:
                users, via = [change.principal], None
            recipients = [u for u in users if u not in told and u != actor and u != flow.creator]
            told.update(recipients)
            # Shared once more: a button someone removed shows as new again.
            await self.buttons.forget(flow.team_id, flow.id, recipients)
            # A group's members are told side by side (the Slack client retries on 429).
            await asyncio.gather(
                *(self._notify(user, flow, actor, change.role, via) for user in recipients)
            )

    async def _notify(
        self, recipient: str, flow: FlowRecord, actor: str, role: Role, via: str | None
    ) -> None:
        try:
            await self.notifier.button_shared(recipient, flow, actor, role, via)
        except Exception:
            # The share stands; a DM that could not be sent must not undo it.
            log.exception("telling %s about flow %s failed", recipient, flow.id)

    # ------------------------------------------------------------------ reading

    async def users(self, team_id: str, actor: str, ref: str) -> UsersView:
        flow, access = await self._authorize(
            team_id,
            actor,
            ref,
            Action.MANAGE_SHARING,
            "Only the owners of *{name}* (and workspace admins) can see who it is shared with.",
        )
        return await self.users_view(flow, actor, access)

    async def users_view(self, flow: FlowRecord, actor: str, access: Access) -> UsersView:
        lines = [ShareLine(flow.creator, "user", "creator", None, flow.created_at, None, False)]
        ordered = sorted(flow.shares, key=lambda s: (s.role != "owner", s.added_at, s.principal))
        for share in ordered:
            kind = principal_kind(share.principal)
            members: tuple[str, ...] | None = None
            if kind == "group":
                group = await self.directory.usergroup_members(flow.team_id, share.principal)
                members = tuple(sorted(group))
            elif kind == "channel":
                channel = await self.directory.channel_members(flow.team_id, share.principal)
                members = tuple(sorted(channel))
            lines.append(
                ShareLine(
                    share.principal,
                    kind,
                    share.role,
                    share.added_by,
                    share.added_at,
                    members,
                    may_remove(flow, access, share.principal),
                )
            )
        audit = await self.audit_store.for_flow(flow.team_id, flow.id, AUDIT_FOOTER)
        return UsersView(flow, actor, access, lines, audit)

    async def audit(
        self, team_id: str, actor: str, ref: str, limit: int = 20
    ) -> tuple[FlowRecord, list[AuditEntry]]:
        flow, _ = await self._authorize(
            team_id,
            actor,
            ref,
            Action.MANAGE_SHARING,
            "Only the owners of *{name}* (and workspace admins) can see its sharing history.",
        )
        return flow, await self.audit_store.for_flow(team_id, flow.id, limit)

    async def remove_share(
        self, team_id: str, actor: str, flow_id: str, principal: str
    ) -> tuple[UnshareResult, UsersView]:
        """The Remove button of `/flow users`: unshare one principal, return the new list."""
        result = await self.unshare(team_id, actor, flow_id, [principal])
        access = await resolve_access(result.flow, actor, self.directory)
        if not allowed(Action.MANAGE_SHARING, result.flow, access):
            # Someone who removed themselves (or their own group) sees no list any more.
            return result, UsersView(result.flow, actor, access, [], [])
        return result, await self.users_view(result.flow, actor, access)

    # ------------------------------------------------------------------ links and access

    async def authorize_link(self, team_id: str, actor: str, ref: str) -> FlowRecord:
        flow, _ = await self._authorize(
            team_id,
            actor,
            ref,
            Action.SHARE_LINK,
            "You can't share a link to *{name}*: only people who may run it can.",
        )
        if flow.kind != "instant":
            raise SharingError(
                f"*{flow.name}* is a {flow.kind} flow; only instant flows (buttons) have links."
            )
        return flow

    async def request_access(self, team_id: str, requester: str, flow_id: str) -> RequestResult:
        flow = await self.find(team_id, flow_id)
        access = await resolve_access(flow, requester, self.directory)
        if allowed(Action.RUN, flow, access):
            return RequestResult(flow, None, already_allowed=True)
        if flow.kind != "instant":
            raise SharingError(f"*{flow.name}* is not a button; ask its owners directly.")
        pending = await self.requests.pending(team_id, flow.id, requester)
        if pending is not None:
            return RequestResult(flow, pending, already_pending=True)
        request = AccessRequest(
            id=self.ids.new_id("Q"),
            team_id=team_id,
            flow_id=flow.id,
            flow_name=flow.name,
            requester=requester,
            created_at=self.clock.now(),
        )
        await self.requests.create(request)
        await self._audit(flow, requester, "access_requested")
        told = 0
        for owner in await self.owner_users(flow):
            try:
                ref = await self.notifier.access_requested(owner, request, flow)
            except Exception:
                log.exception("asking owner %s about request %s failed", owner, request.id)
                continue
            told += 1
            if ref is not None:
                await self.requests.add_message(request.id, ref)
        return RequestResult(flow, request, owners_told=told)

    async def owner_users(self, flow: FlowRecord) -> list[str]:
        """The creator, then co-owners named directly or through their groups/channels."""
        users: dict[str, None] = {flow.creator: None}
        for principal in flow.principals("owner"):
            kind = principal_kind(principal)
            if kind == "group":
                users.update(
                    dict.fromkeys(
                        sorted(await self.directory.usergroup_members(flow.team_id, principal))
                    )
                )
            elif kind == "channel":
                users.update(
                    dict.fromkeys(
                        sorted(await self.directory.channel_members(flow.team_id, principal))
                    )
                )
            else:
                users[principal] = None
        return list(users)[:MAX_OWNER_DMS]

    async def decide(
        self, team_id: str, actor: str, request_id: str, approve: bool
    ) -> DecisionResult:
        request = await self.requests.get(team_id, request_id)
        if request is None:
            raise SharingError("That access request no longer exists.")
        flow = await self.flows.get(team_id, request.flow_id)
        if flow is None:
            raise SharingError(f"The flow *{request.flow_name}* no longer exists.")
        access = await resolve_access(flow, actor, self.directory)
        if not allowed(Action.MANAGE_SHARING, flow, access):
            raise NotAllowed(f"Only the owners of *{flow.name}* can answer access requests.")
        if request.status != "pending":
            return DecisionResult(request, flow, already_decided=True)
        status: RequestStatus = "approved" if approve else "denied"
        decided = await self.requests.decide(team_id, request_id, status, actor, self.clock.now())
        if decided is None:
            current = await self.requests.get(team_id, request_id)
            return DecisionResult(current or request, flow, already_decided=True)
        if approve:
            if flow.kind != "instant":
                raise SharingError(f"*{flow.name}* is no longer a button.")
            result = await self._apply(
                flow,
                actor,
                [decided.requester],
                "runner",
                kind_added="access_approved",
                detail=f"request {decided.id}",
                refused=[],
            )
            if result.unchanged:  # already on the list: still record the decision
                await self._audit(
                    flow,
                    actor,
                    "access_approved",
                    decided.requester,
                    "runner",
                    detail=f"request {decided.id}",
                )
            flow = result.flow
            await self.buttons.forget(team_id, flow.id, [decided.requester])
        else:
            await self._audit(
                flow, actor, "access_denied", decided.requester, detail=f"request {decided.id}"
            )
        try:
            await self.notifier.access_decided(decided, flow)
        except Exception:
            log.exception("telling %s about request %s failed", decided.requester, decided.id)
        for ref in decided.messages:
            try:
                await self.notifier.request_closed(ref, decided, flow)
            except Exception:
                log.exception("updating request message %s failed", ref.ts)
        return DecisionResult(decided, flow)

    # ------------------------------------------------------------------ My buttons

    async def my_buttons(self, team_id: str, user_id: str) -> MyButtons:
        states = await self.buttons.states(team_id, user_id)
        added: list[ButtonItem] = []
        new: list[ButtonItem] = []
        removed: list[ButtonItem] = []
        for flow in await self.flows.list_candidates(team_id, user_id):
            if flow.kind != "instant" or flow.creator == user_id:
                continue
            access = await resolve_access(flow, user_id, self.directory)
            if not allowed(Action.RUN, flow, access):
                continue
            state = states.get(flow.id)
            if state is None:
                new.append(ButtonItem(flow, access, "new"))
            elif state.status == "added":
                added.append(ButtonItem(flow, access, "added"))
            else:
                removed.append(ButtonItem(flow, access, "removed"))
        key = _by_name
        return MyButtons(sorted(added, key=key), sorted(new, key=key), sorted(removed, key=key))

    async def add_button(self, team_id: str, user_id: str, flow_id: str) -> FlowRecord:
        flow = await self.find(team_id, flow_id)
        if not await self._may_run(flow, user_id):
            raise NotAllowed(f"*{flow.name}* is not shared with you (any more).")
        await self.buttons.set_status(team_id, user_id, flow.id, "added", self.clock.now())
        return flow

    async def remove_button(self, team_id: str, user_id: str, flow_id: str) -> FlowRecord:
        flow = await self.find(team_id, flow_id)
        await self.buttons.set_status(team_id, user_id, flow.id, "removed", self.clock.now())
        return flow

    async def _may_run(self, flow: FlowRecord, user_id: str) -> bool:
        return allowed(Action.RUN, flow, await resolve_access(flow, user_id, self.directory))

    # ------------------------------------------------------------------ creation policy

    async def policy(self, team_id: str) -> WorkspacePolicy:
        return await self.policies.get(team_id)

    async def set_creators(
        self, team_id: str, actor: str, creators: Sequence[str] | None
    ) -> WorkspacePolicy:
        """Workspace admins only: None lets everyone create flows."""
        if not await self.directory.is_workspace_admin(team_id, actor):
            raise NotAllowed("Only workspace admins and owners can change who may create flows.")
        if creators is not None:
            bad = [p for p in creators if not is_principal(p)]
            if bad or not creators:
                raise SharingError("List people, user groups or channels, or say `everyone`.")
            creators = list(dict.fromkeys(creators))
        before = await self.policies.get(team_id)
        policy = WorkspacePolicy(
            team_id=team_id,
            creators=list(creators) if creators is not None else None,
            updated_by=actor,
            updated_at=self.clock.now(),
        )
        await self.policies.put(policy)
        await self.audit_store.add(
            AuditEntry(
                id=self.ids.new_id("A"),
                team_id=team_id,
                at=policy.updated_at or self.clock.now(),
                actor=actor,
                kind="creators_changed",
                detail=f"{_creators_text(before.creators)} → {_creators_text(policy.creators)}",
            )
        )
        return policy

    async def creation_refusal(self, team_id: str, user_id: str) -> str | None:
        """None if the user may create flows; else what to tell them (whom to ask)."""
        policy = await self.policies.get(team_id)
        if await may_create_flows(team_id, user_id, policy.creators, self.directory):
            return None
        who = f" (<@{policy.updated_by}> set this)" if policy.updated_by else ""
        return (
            "Only some people may create flows in this workspace, and you are not one of "
            f"them. Ask a workspace admin{who} to add you with `/flow admin creators`."
        )


def _by_name(item: ButtonItem) -> str:
    return item.flow.name.casefold()


def _creators_text(creators: Sequence[str] | None) -> str:
    if creators is None:
        return "everyone"
    return ", ".join(mention(p) for p in creators)


def mention(principal: str) -> str:
    """How Slack shows a principal in mrkdwn."""
    kind = principal_kind(principal)
    if kind == "group":
        return f"<!subteam^{principal}>"
    if kind == "channel":
        return f"<#{principal}>"
    return f"<@{principal}>"
