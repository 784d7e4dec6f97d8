"""Who a flow is shared with: share / unshare (telling the recipients), `/flow users`,
the audit trail, and the Remove button of `/flow users`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Iterable, Sequence

from flows.permissions import Access, Action, allowed, may_add, may_remove, resolve_access
from flows.records import FlowRecord, Role, Share
from flows.sharing.base import SHARE_RETRIES, SharingCore
from flows.sharing.errors import NotAButton, SharingConflict
from flows.sharing.model import (
    AuditEntry,
    PrincipalRefusal,
    ShareChange,
    ShareLine,
    ShareResult,
    UnshareResult,
    UsersView,
    default_role,
)
from flows.slack_ids import principal_kind

log = logging.getLogger(__name__)

# A share to a big user group DMs at most this many members (the rest see the banner).
MAX_GROUP_DMS = 200
AUDIT_FOOTER = 5


def _share_refusal(
    flow: FlowRecord, access: Access, principal: str, role: Role, actor: str
) -> PrincipalRefusal | None:
    if principal == flow.creator:
        return "is_creator"
    if not may_add(flow, access, principal, role, actor):
        return "cannot_add"
    return None


def _unshare_refusal(
    flow: FlowRecord, access: Access, principal: str, current: dict[str, Share]
) -> PrincipalRefusal | None:
    if principal == flow.creator:
        return "creator_unremovable"
    if principal not in current:
        return "not_shared"
    if not may_remove(flow, access, principal):
        return "cannot_remove"
    return None


class ShareLists(SharingCore):
    async def share(
        self,
        team_id: str,
        actor: str,
        ref: str,
        principals: Sequence[str],
        role: Role | None = None,
    ) -> ShareResult:
        flow, access = await self._authorize(team_id, actor, ref, Action.MANAGE_SHARING, "share")
        role = role or default_role(flow)
        if role == "runner" and flow.kind != "instant":
            raise NotAButton("run_only_share", flow.name, flow.kind)
        wanted: list[str] = []
        refused: list[tuple[str, PrincipalRefusal]] = []
        for principal in dict.fromkeys(principals):
            why = _share_refusal(flow, access, principal, role, actor)
            if why is None:
                wanted.append(principal)
            else:
                refused.append((principal, why))
        result = await self._apply(
            flow, actor, wanted, role, kind_added="shared", detail=None, refused=refused
        )
        await self._tell_recipients(result.flow, actor, [*result.added, *result.changed])
        return result

    async def unshare(
        self, team_id: str, actor: str, ref: str, principals: Sequence[str]
    ) -> UnshareResult:
        flow, access = await self._authorize(team_id, actor, ref, Action.MANAGE_SHARING, "unshare")
        for _ in range(SHARE_RETRIES):
            current = {s.principal: s for s in flow.shares}
            removed: list[ShareChange] = []
            refused: list[tuple[str, PrincipalRefusal]] = []
            for principal in dict.fromkeys(principals):
                why = _unshare_refusal(flow, access, principal, current)
                if why is None:
                    removed.append(ShareChange(principal, current[principal].role))
                else:
                    refused.append((principal, why))
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
        raise SharingConflict(flow.name)

    # ------------------------------------------------------------------ telling recipients

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
            team_id, actor, ref, Action.MANAGE_SHARING, "see_users"
        )
        return await self.users_view(flow, actor, access)

    async def users_view(self, flow: FlowRecord, actor: str, access: Access) -> UsersView:
        lines = [ShareLine(flow.creator, "user", "creator", None, flow.created_at, None, False)]
        ordered = sorted(flow.shares, key=lambda s: (s.role != "owner", s.added_at, s.principal))
        for share in ordered:
            lines.append(
                ShareLine(
                    share.principal,
                    principal_kind(share.principal),
                    share.role,
                    share.added_by,
                    share.added_at,
                    await self._members(flow.team_id, share.principal),
                    may_remove(flow, access, share.principal),
                )
            )
        audit = await self.audit_store.for_flow(flow.team_id, flow.id, AUDIT_FOOTER)
        return UsersView(flow, actor, access, lines, audit)

    async def _members(self, team_id: str, principal: str) -> tuple[str, ...] | None:
        """A group's or a channel's members, sorted; None for a user."""
        kind = principal_kind(principal)
        if kind == "group":
            return tuple(sorted(await self.directory.usergroup_members(team_id, principal)))
        if kind == "channel":
            return tuple(sorted(await self.directory.channel_members(team_id, principal)))
        return None

    async def audit(
        self, team_id: str, actor: str, ref: str, limit: int = 20
    ) -> tuple[FlowRecord, list[AuditEntry]]:
        flow, _ = await self._authorize(team_id, actor, ref, Action.MANAGE_SHARING, "see_audit")
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
