"""The workspace's creation policy: everyone, or listed users, groups and channels. Only
workspace admins change it; a refused person is told whom to ask."""

from __future__ import annotations

from collections.abc import Sequence

from flows.catalog import CreationRefused
from flows.permissions import may_create_flows, may_set_creation_policy
from flows.sharing.base import SharingCore
from flows.sharing.errors import BadCreatorsList, SharingRefused
from flows.sharing.model import AuditEntry, WorkspacePolicy
from flows.slack_ids import is_principal, mention


def _creators_text(creators: Sequence[str] | None) -> str:
    """The audit trail's record of a policy (kept as stored so far: Slack mentions)."""
    if creators is None:
        return "everyone"
    return ", ".join(mention(p) for p in creators)


class CreationRules(SharingCore):
    async def policy(self, team_id: str) -> WorkspacePolicy:
        return await self.policies.get(team_id)

    async def set_creators(
        self, team_id: str, actor: str, creators: Sequence[str] | None
    ) -> WorkspacePolicy:
        """Workspace admins only: None lets everyone create flows."""
        if not await may_set_creation_policy(team_id, actor, self.directory):
            raise SharingRefused("set_creators", actor, None)
        if creators is not None:
            invalid = [p for p in creators if not is_principal(p)]
            if invalid or not creators:
                raise BadCreatorsList(invalid)
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

    async def creation_refusal(self, team_id: str, user_id: str) -> CreationRefused | None:
        """None if the user may create flows; else the refusal, naming whom to ask (the
        catalog raises it)."""
        policy = await self.policies.get(team_id)
        if await may_create_flows(team_id, user_id, policy.creators, self.directory):
            return None
        return CreationRefused(user_id, policy.updated_by)
