"""The one permission function. Every handler asks it; SPEC §4's table is the law.

| action                    | creator | co-owner | run-only        | admin          | others |
| run an instant flow       | yes     | yes      | yes             | no             | no     |
| run scheduled / test-run  | yes     | yes      | no              | no             | no     |
| edit, enable, disable     | yes     | yes      | no              | no             | no     |
| full run history          | yes     | yes      | own runs only   | no             | no     |
| manage sharing            | yes     | yes*     | no              | yes, self too  | no     |
| attach own connections    | yes     | yes      | own when asked  | no             | no     |
| delete                    | yes     | yes      | no              | no             | no     |
| share a link              | yes     | yes      | yes             | no             | no     |
(* never removing the creator: see `may_remove`.)
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from flows.ports import Directory
from flows.records import FlowRecord


class Action(str, enum.Enum):
    VIEW = "view"  # see the flow in lists, /flow show, its definition
    RUN = "run"  # start it by hand (instant: runners too; scheduled: owners only)
    TEST_RUN = "test_run"
    EDIT = "edit"  # definition, enable / disable
    VIEW_HISTORY = "view_history"  # every run, inputs, outputs
    VIEW_OWN_RUNS = "view_own_runs"
    MANAGE_SHARING = "manage_sharing"
    ATTACH_CONNECTION = "attach_connection"
    PROVIDE_OWN_CONNECTION = "provide_own_connection"
    DELETE = "delete"
    SHARE_LINK = "share_link"
    EXPORT = "export"


@dataclass(frozen=True)
class Access:
    """How a user relates to a flow. `via` names the group or channel that granted it."""

    is_creator: bool = False
    is_owner: bool = False  # creator or co-owner (directly or through a group)
    is_runner: bool = False  # run-only (directly or through a group)
    is_admin: bool = False
    via: str | None = None

    @property
    def role(self) -> str:
        if self.is_creator:
            return "creator"
        if self.is_owner:
            return "owner"
        if self.is_runner:
            return "runner"
        if self.is_admin:
            return "admin"
        return "none"


async def principal_includes(
    team_id: str, principal: str, user_id: str, directory: Directory
) -> bool:
    """Is the user this principal, or a member of this user group or channel?"""
    if principal == user_id:
        return True
    if principal.startswith("S"):
        return user_id in await directory.usergroup_members(team_id, principal)
    if principal.startswith(("C", "G")):
        return user_id in await directory.channel_members(team_id, principal)
    return False


async def resolve_access(flow: FlowRecord, user_id: str, directory: Directory) -> Access:
    """Group membership counts, and is read live (cached briefly) so leaving a group
    loses the access it gave."""
    is_admin = await directory.is_workspace_admin(flow.team_id, user_id)
    if flow.creator == user_id:
        return Access(is_creator=True, is_owner=True, is_admin=is_admin)
    owner_via: str | None = None
    runner_via: str | None = None
    is_owner = is_runner = False
    for share in flow.shares:
        if share.role == "owner" and is_owner:
            continue
        if share.role == "runner" and (is_runner or is_owner):
            continue
        if await principal_includes(flow.team_id, share.principal, user_id, directory):
            if share.role == "owner":
                is_owner = True
                owner_via = None if share.principal == user_id else share.principal
            else:
                is_runner = True
                runner_via = None if share.principal == user_id else share.principal
    if is_owner:
        return Access(is_owner=True, is_admin=is_admin, via=owner_via)
    # Run-only sharing only exists for instant flows.
    if is_runner and flow.kind == "instant":
        return Access(is_runner=True, is_admin=is_admin, via=runner_via)
    return Access(is_admin=is_admin)


def allowed(action: Action, flow: FlowRecord, access: Access) -> bool:
    if access.is_owner:
        return True
    if access.is_runner and flow.kind == "instant":
        return action in (
            Action.VIEW,
            Action.RUN,
            Action.VIEW_OWN_RUNS,
            Action.PROVIDE_OWN_CONNECTION,
            Action.SHARE_LINK,
        )
    if access.is_admin:
        return action is Action.MANAGE_SHARING
    return False


def may_remove(flow: FlowRecord, access: Access, principal: str) -> bool:
    """Owners and admins may remove anyone from the sharing list but the creator."""
    return principal != flow.creator and allowed(Action.MANAGE_SHARING, flow, access)


def may_add(flow: FlowRecord, access: Access, principal: str, role: str, actor: str) -> bool:
    """Owners may add co-owners and (instant flows) run-only users; an admin too, and may
    add themselves."""
    if role == "runner" and flow.kind != "instant":
        return False
    return allowed(Action.MANAGE_SHARING, flow, access)


async def can(action: Action, flow: FlowRecord, user_id: str, directory: Directory) -> bool:
    return allowed(action, flow, await resolve_access(flow, user_id, directory))
