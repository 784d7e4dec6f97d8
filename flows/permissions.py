"""The one place permissions are decided. The use cases in `flows` ask it (never the
listeners in `handlers`); SPEC §4's table is the law.

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

Roles add up: someone who is both run-only (through a channel) and a workspace admin has
the rights of both columns. Run-only sharing exists for instant flows ("buttons") only; a
run-only share left on another kind of flow grants nothing. Group and channel membership
is read from the `Directory` each time (it caches briefly), so leaving a group loses the
access it gave.
"""

from __future__ import annotations

import enum
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

from flows.ports import Directory
from flows.records import FlowRecord
from flows.slack_ids import is_principal, principal_kind

__all__ = [
    "ADMIN_ACTIONS",
    "OWNER_ACTIONS",
    "RUNNER_ACTIONS",
    "Access",
    "Action",
    "allowed",
    "granted",
    "hides_flow",
    "is_principal",
    "may_add",
    "may_backfill",
    "may_create_flows",
    "may_read_trigger_log",
    "may_remove",
    "may_set_creation_policy",
    "may_view_run",
    "principal_includes",
    "principal_kind",
    "resolve_access",
]


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


# The table, column by column. Owners (creator and co-owners) may do everything; the
# creator differs only in never being removable (`may_remove`).
OWNER_ACTIONS: frozenset[Action] = frozenset(Action)
RUNNER_ACTIONS: frozenset[Action] = frozenset(
    {
        Action.VIEW,
        Action.RUN,
        Action.VIEW_OWN_RUNS,
        Action.PROVIDE_OWN_CONNECTION,
        Action.SHARE_LINK,
    }
)
ADMIN_ACTIONS: frozenset[Action] = frozenset({Action.MANAGE_SHARING})


@dataclass(frozen=True)
class Access:
    """How a user relates to a flow. `via` names the group or channel that granted it
    (None when the share names the user directly, or for the creator)."""

    is_creator: bool = False
    is_owner: bool = False  # creator or co-owner (directly or through a group)
    is_runner: bool = False  # run-only (directly or through a group); instant flows only
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
    if not user_id:
        return False
    if principal == user_id:
        return True
    kind = principal_kind(principal)
    if kind == "group":
        return user_id in await directory.usergroup_members(team_id, principal)
    if kind == "channel":
        return user_id in await directory.channel_members(team_id, principal)
    return False


async def _first_match(
    team_id: str, principals: Iterable[str], user_id: str, directory: Directory
) -> tuple[bool, str | None]:
    """Does any principal include the user? A direct share wins over a group for `via`."""
    principals = list(dict.fromkeys(principals))
    if user_id in principals:
        return True, None
    for principal in principals:
        if principal_kind(principal) != "user" and await principal_includes(
            team_id, principal, user_id, directory
        ):
            return True, principal
    return False, None


async def resolve_access(flow: FlowRecord, user_id: str, directory: Directory) -> Access:
    """Group membership counts, and is read live (cached briefly) so leaving a group
    loses the access it gave."""
    is_admin = bool(user_id) and await directory.is_workspace_admin(flow.team_id, user_id)
    if user_id and flow.creator == user_id:
        return Access(is_creator=True, is_owner=True, is_admin=is_admin)
    is_owner, via = await _first_match(flow.team_id, flow.principals("owner"), user_id, directory)
    if is_owner:
        return Access(is_owner=True, is_admin=is_admin, via=via)
    # Run-only sharing only exists for instant flows.
    if flow.kind == "instant":
        is_runner, via = await _first_match(
            flow.team_id, flow.principals("runner"), user_id, directory
        )
        if is_runner:
            return Access(is_runner=True, is_admin=is_admin, via=via)
    return Access(is_admin=is_admin)


def granted(flow: FlowRecord, access: Access) -> frozenset[Action]:
    """Every action this access allows on this flow: the union of its roles' columns."""
    actions: set[Action] = set()
    if access.is_owner or access.is_creator:
        actions |= OWNER_ACTIONS
    if access.is_runner and flow.kind == "instant":
        actions |= RUNNER_ACTIONS
    if access.is_admin:
        actions |= ADMIN_ACTIONS
    return frozenset(actions)


def allowed(action: Action, flow: FlowRecord, access: Access) -> bool:
    return action in granted(flow, access)


def hides_flow(flow: FlowRecord, access: Access) -> bool:
    """Someone who may not even see the flow (and is no admin) is told it does not exist:
    its name must not leak."""
    return not allowed(Action.VIEW, flow, access) and not access.is_admin


def may_remove(flow: FlowRecord, access: Access, principal: str) -> bool:
    """Owners and admins may remove anyone from the sharing list but the creator."""
    return principal != flow.creator and allowed(Action.MANAGE_SHARING, flow, access)


def may_add(flow: FlowRecord, access: Access, principal: str, role: str, actor: str) -> bool:
    """Owners may add co-owners and (instant flows) run-only users; an admin too, and may
    add themselves. The creator is always an owner and never gets a share of their own."""
    if role not in ("owner", "runner"):
        return False
    if role == "runner" and flow.kind != "instant":
        return False
    if not is_principal(principal) or principal == flow.creator:
        return False
    return allowed(Action.MANAGE_SHARING, flow, access)


def may_view_run(flow: FlowRecord, access: Access, user_id: str, started_by: str | None) -> bool:
    """Owners see every run; run-only users the results of the runs they started."""
    if allowed(Action.VIEW_HISTORY, flow, access):
        return True
    return (
        allowed(Action.VIEW_OWN_RUNS, flow, access)
        and started_by is not None
        and started_by == user_id
    )


def may_view_run_of_deleted_flow(user_id: str, started_by: str | None) -> bool:
    """A deleted flow has no sharing left: only whoever started a run still sees it."""
    return bool(user_id) and started_by == user_id


async def may_create_flows(
    team_id: str, user_id: str, creators: Sequence[str] | None, directory: Directory
) -> bool:
    """The workspace's creation policy: None is everyone; otherwise the listed users, user
    groups and channels. Workspace admins (who set the policy) may always create."""
    if creators is None:
        return True
    if not user_id:
        return False
    if await directory.is_workspace_admin(team_id, user_id):
        return True
    for principal in creators:
        if await principal_includes(team_id, principal, user_id, directory):
            return True
    return False


async def may_set_creation_policy(team_id: str, user_id: str, directory: Directory) -> bool:
    """Only workspace admins (and owners) choose who may create flows."""
    return await directory.is_workspace_admin(team_id, user_id)


def may_read_trigger_log(flow: FlowRecord, access: Access) -> bool:
    """`/flow why` and `/flow next` (SPEC §14): owners, as for the full run history."""
    return access.is_owner and allowed(Action.VIEW_HISTORY, flow, access)


def may_backfill(flow: FlowRecord, access: Access) -> bool:
    """`/flow backfill` (SPEC §14): owners, who may run the scheduled flow by hand."""
    return access.is_owner and allowed(Action.RUN, flow, access)


# --- run control (SPEC §12)


def may_cancel_run(access: Access, user_id: str, started_by: str | None) -> bool:
    """`/flow cancel`: owners, and whoever started the run."""
    return access.is_owner or (started_by is not None and started_by == user_id)


def may_retry_run(access: Access) -> bool:
    """`/flow retry` (continue a failed run): owners only."""
    return access.is_owner


def may_rerun(flow: FlowRecord, access: Access, user_id: str, started_by: str | None) -> bool:
    """`/flow rerun`: owners; run-only users for the runs they started (while they may
    still run the flow)."""
    if access.is_owner:
        return True
    return started_by == user_id and allowed(Action.RUN, flow, access)
