"""What every sharing use case shares: its stores, finding a flow and checking the actor
through `flows.permissions`, the compare-and-swap of the sharing list, the audit trail."""

from __future__ import annotations

import asyncio
import random
from dataclasses import dataclass, field
from datetime import datetime

from flows.errors import FlowNotFound
from flows.permissions import Access, Action, allowed, hides_flow, resolve_access
from flows.ports import Clock, Directory, IdGenerator
from flows.records import FlowRecord, Role, Share
from flows.sharing.errors import RefusedOperation, SharingConflict, SharingRefused
from flows.sharing.model import (
    AuditEntry,
    AuditKind,
    PrincipalRefusal,
    ShareChange,
    ShareResult,
)
from flows.sharing.ports import (
    AccessRequestStore,
    AuditStore,
    ButtonStore,
    PolicyStore,
    SharedFlowStore,
    SharingNotifier,
)

# Compare-and-swap rounds: each round one racing writer wins, so this many racing changes
# of one flow's sharing list all land.
SHARE_RETRIES = 25


@dataclass
class _Additions:
    """Adding or re-roling principals on a sharing list, planned before it is saved."""

    shares: list[Share]
    added: list[ShareChange] = field(default_factory=list)
    changed: list[ShareChange] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)


def _plan_additions(
    flow: FlowRecord, principals: list[str], role: Role, actor: str, now: datetime
) -> _Additions:
    by_principal = {s.principal: s for s in flow.shares}
    plan = _Additions(list(flow.shares))
    for principal in principals:
        existing = by_principal.get(principal)
        if existing is not None and existing.role == role:
            plan.unchanged.append(principal)
            continue
        share = Share(principal=principal, role=role, added_by=actor, added_at=now)
        if existing is None:
            plan.shares.append(share)
            plan.added.append(ShareChange(principal, role))
        else:
            plan.shares[plan.shares.index(existing)] = share
            plan.changed.append(ShareChange(principal, role, existing.role))
    return plan


class SharingCore:
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

    async def find(self, team_id: str, ref: str) -> FlowRecord:
        """A flow by id or by name; `FlowNotFound` otherwise."""
        ref = ref.strip()
        if not ref:
            raise FlowNotFound(ref)
        flow = await self.flows.get(team_id, ref) if " " not in ref else None
        flow = flow or await self.flows.get_by_name(team_id, ref)
        if flow is None:
            raise FlowNotFound(ref)
        return flow

    async def _authorize(
        self, team_id: str, user_id: str, ref: str, action: Action, operation: RefusedOperation
    ) -> tuple[FlowRecord, Access]:
        """The flow if the user may do `action`. Someone from whom the flow is hidden is
        told it does not exist, as the catalog does."""
        flow = await self.find(team_id, ref)
        access = await resolve_access(flow, user_id, self.directory)
        if not allowed(action, flow, access):
            if hides_flow(flow, access):
                raise FlowNotFound(ref)
            raise SharingRefused(operation, user_id, flow.name)
        return flow, access

    async def _apply(
        self,
        flow: FlowRecord,
        actor: str,
        principals: list[str],
        role: Role,
        *,
        kind_added: AuditKind,
        detail: str | None,
        refused: list[tuple[str, PrincipalRefusal]],
    ) -> ShareResult:
        """Add or re-role `principals`, compare-and-swap on the stored list."""
        for _ in range(SHARE_RETRIES):
            plan = _plan_additions(flow, principals, role, actor, self.clock.now())
            if not plan.added and not plan.changed:
                return ShareResult(flow, role, [], [], plan.unchanged, refused)
            saved = await self.flows.set_shares(flow.team_id, flow.id, plan.shares, flow.shares)
            if saved is not None:
                await self._audit_additions(saved, actor, plan, kind_added, detail)
                return ShareResult(saved, role, plan.added, plan.changed, plan.unchanged, refused)
            flow = await self._reload(flow, actor)
        raise SharingConflict(flow.name)

    async def _audit_additions(
        self,
        flow: FlowRecord,
        actor: str,
        plan: _Additions,
        kind_added: AuditKind,
        detail: str | None,
    ) -> None:
        for change in plan.added:
            await self._audit(flow, actor, kind_added, change.principal, change.role, None, detail)
        for change in plan.changed:
            await self._audit(
                flow,
                actor,
                "role_changed",
                change.principal,
                change.role,
                change.previous_role,
                detail,
            )

    async def _reload(self, flow: FlowRecord, actor: str) -> FlowRecord:
        """The flow as stored now (the list changed under us); the actor must still be
        allowed to manage its sharing."""
        await asyncio.sleep(random.uniform(0, 0.02))  # let racing writers spread out
        fresh = await self.flows.get(flow.team_id, flow.id)
        if fresh is None:
            raise FlowNotFound(flow.name)
        access = await resolve_access(fresh, actor, self.directory)
        if not allowed(Action.MANAGE_SHARING, fresh, access):
            raise SharingRefused("keep_managing", actor, fresh.name)
        return fresh

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
