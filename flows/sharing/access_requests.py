"""Link buttons and requests for access (SPEC §5).

A link grants nothing: someone who may not run the flow can request access; every owner
gets Approve / Deny, the first decision counts, approval adds the requester as a run-only
user and the requester is told the answer.
"""

from __future__ import annotations

import logging

from flows.permissions import Action, allowed, resolve_access
from flows.records import FlowRecord
from flows.sharing.base import SharingCore
from flows.sharing.errors import LinkNotPosted, NotAButton, RequestGone, SharingRefused
from flows.sharing.model import (
    AccessRequest,
    DecisionResult,
    LinkOpened,
    LinkPosted,
    RequestResult,
    RequestStatus,
)
from flows.slack_ids import principal_kind

log = logging.getLogger(__name__)

# An access request DMs at most this many owners.
MAX_OWNER_DMS = 50


class AccessRequests(SharingCore):
    async def authorize_link(self, team_id: str, actor: str, ref: str) -> FlowRecord:
        """The button a link may be posted for (`/flow link`)."""
        flow, _ = await self._authorize(team_id, actor, ref, Action.SHARE_LINK, "share_link")
        if flow.kind != "instant":
            raise NotAButton("link", flow.name, flow.kind)
        return flow

    async def post_link(self, team_id: str, actor: str, ref: str, channel: str) -> LinkPosted:
        """`/flow link`: post a Run button for the flow in `channel`."""
        flow = await self.authorize_link(team_id, actor, ref)
        message = await self.notifier.link_shared(channel, flow, actor)
        if message is None:
            raise LinkNotPosted(flow.name, channel)
        return LinkPosted(flow, message.channel, message)

    async def open_link(self, team_id: str, user_id: str, flow_id: str) -> LinkOpened:
        """A click on a link's Run button: may this person run the flow?"""
        flow = await self.find(team_id, flow_id)
        access = await resolve_access(flow, user_id, self.directory)
        return LinkOpened(flow, allowed(Action.RUN, flow, access))

    async def request_access(self, team_id: str, requester: str, flow_id: str) -> RequestResult:
        flow = await self.find(team_id, flow_id)
        access = await resolve_access(flow, requester, self.directory)
        if allowed(Action.RUN, flow, access):
            return RequestResult(flow, None, already_allowed=True)
        if flow.kind != "instant":
            raise NotAButton("request", flow.name, flow.kind)
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
        told = await self._ask_owners(request, flow)
        return RequestResult(flow, request, owners_told=told)

    async def _ask_owners(self, request: AccessRequest, flow: FlowRecord) -> int:
        """DM every owner Approve / Deny; how many were told."""
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
        return told

    async def owner_users(self, flow: FlowRecord) -> list[str]:
        """The creator, then co-owners named directly or through their groups/channels."""
        users: dict[str, None] = {flow.creator: None}
        for principal in flow.principals("owner"):
            kind = principal_kind(principal)
            if kind == "group":
                members = await self.directory.usergroup_members(flow.team_id, principal)
            elif kind == "channel":
                members = await self.directory.channel_members(flow.team_id, principal)
            else:
                members = frozenset({principal})
            users.update(dict.fromkeys(sorted(members)))
        return list(users)[:MAX_OWNER_DMS]

    async def decide(
        self, team_id: str, actor: str, request_id: str, approve: bool
    ) -> DecisionResult:
        """An owner's Approve / Deny; the first decision counts."""
        request = await self.requests.get(team_id, request_id)
        if request is None:
            raise RequestGone(request_id)
        flow = await self.flows.get(team_id, request.flow_id)
        if flow is None:
            raise RequestGone(request_id, request.flow_name)
        access = await resolve_access(flow, actor, self.directory)
        if not allowed(Action.MANAGE_SHARING, flow, access):
            raise SharingRefused("answer_request", actor, flow.name)
        if request.status != "pending":
            return DecisionResult(request, flow, already_decided=True)
        status: RequestStatus = "approved" if approve else "denied"
        decided = await self.requests.decide(team_id, request_id, status, actor, self.clock.now())
        if decided is None:
            current = await self.requests.get(team_id, request_id)
            return DecisionResult(current or request, flow, already_decided=True)
        if approve:
            flow = await self._approve(flow, actor, decided)
        else:
            await self._audit(
                flow, actor, "access_denied", decided.requester, detail=f"request {decided.id}"
            )
        await self._tell_decision(decided, flow)
        return DecisionResult(decided, flow)

    async def _approve(self, flow: FlowRecord, actor: str, decided: AccessRequest) -> FlowRecord:
        """The requester becomes a run-only user (the decision is audited either way)."""
        if flow.kind != "instant":
            raise NotAButton("approve", flow.name, flow.kind)
        detail = f"request {decided.id}"
        result = await self._apply(
            flow,
            actor,
            [decided.requester],
            "runner",
            kind_added="access_approved",
            detail=detail,
            refused=[],
        )
        if result.unchanged:  # already on the list: still record the decision
            await self._audit(
                flow, actor, "access_approved", decided.requester, "runner", detail=detail
            )
        await self.buttons.forget(flow.team_id, flow.id, [decided.requester])
        return result.flow

    async def _tell_decision(self, decided: AccessRequest, flow: FlowRecord) -> None:
        """The requester hears the answer; every owner's Approve / Deny message shows it."""
        try:
            await self.notifier.access_decided(decided, flow)
        except Exception:
            log.exception("telling %s about request %s failed", decided.requester, decided.id)
        for ref in decided.messages:
            try:
                await self.notifier.request_closed(ref, decided, flow)
            except Exception:
                log.exception("updating request message %s failed", ref.ts)
