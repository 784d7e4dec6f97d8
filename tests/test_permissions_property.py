"""flows.permissions against an independent model of SPEC §4's table.

Random sequences of share / unshare attempts (by random actors, applied only when the
permission function allows them) and group / channel / admin changes; after each step,
every user's rights on every action must be exactly what the table gives their roles,
and an applied change must have been one the table lets that actor make. The directory
is a hand-written fake (membership is data here; the Slack one is tested end to end).
"""

from __future__ import annotations

import asyncio
from datetime import datetime, timezone

from hypothesis import given, settings
from hypothesis import strategies as st

from flows.definition import FlowDefinition, definition_from_dict
from flows.permissions import (
    Action,
    allowed,
    hides_flow,
    may_add,
    may_create_flows,
    may_remove,
    may_set_creation_policy,
    may_view_run,
    may_view_run_of_deleted_flow,
    resolve_access,
)
from flows.records import FlowRecord, Share

TEAM = "T0TEAM"
CREATOR = "U0CREATOR"
USERS = ["U0CREATOR", "U0A", "U0B", "U0C", "U0D"]
GROUPS = ["S0ONE", "S0TWO"]
CHANNELS = ["C0ONE"]
PRINCIPALS = [*USERS, *GROUPS, *CHANNELS]
NOW = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)


class FakeDirectory:
    """Hand-written Directory: membership and admin flags are plain data."""

    def __init__(self) -> None:
        self.groups: dict[str, set[str]] = {g: set() for g in GROUPS}
        self.channels: dict[str, set[str]] = {c: set() for c in CHANNELS}
        self.admins: set[str] = set()

    async def usergroup_members(self, team_id: str, group_id: str) -> frozenset[str]:
        return frozenset(self.groups.get(group_id, set()))

    async def channel_members(self, team_id: str, channel_id: str) -> frozenset[str]:
        return frozenset(self.channels.get(channel_id, set()))

    async def is_workspace_admin(self, team_id: str, user_id: str) -> bool:
        return user_id in self.admins

    async def resolve_channel(self, team_id: str, channel: str) -> str:
        return channel

    async def channel_id(self, team_id: str, name: str) -> str | None:
        return None


# ---------------------------------------------------------------------- the model

# SPEC §4, cell by cell: row → column → allowed. "own" (run-only history) is its own row.
TABLE: dict[str, dict[str, bool]] = {
    "run_instant": {"creator": True, "owner": True, "runner": True, "admin": False},
    "run_other": {"creator": True, "owner": True, "runner": False, "admin": False},
    "edit": {"creator": True, "owner": True, "runner": False, "admin": False},
    "full_history": {"creator": True, "owner": True, "runner": False, "admin": False},
    "own_runs": {"creator": True, "owner": True, "runner": True, "admin": False},
    "manage_sharing": {"creator": True, "owner": True, "runner": False, "admin": True},
    "attach_connection": {"creator": True, "owner": True, "runner": False, "admin": False},
    "provide_own_connection": {"creator": True, "owner": True, "runner": True, "admin": False},
    "delete": {"creator": True, "owner": True, "runner": False, "admin": False},
    "share_link": {"creator": True, "owner": True, "runner": True, "admin": False},
}


def row_of(action: Action, kind: str) -> str:
    return {
        Action.VIEW: "share_link",  # seeing a flow goes with being able to run / link it
        Action.RUN: "run_instant" if kind == "instant" else "run_other",
        Action.TEST_RUN: "run_other",
        Action.EDIT: "edit",
        Action.VIEW_HISTORY: "full_history",
        Action.VIEW_OWN_RUNS: "own_runs",
        Action.MANAGE_SHARING: "manage_sharing",
        Action.ATTACH_CONNECTION: "attach_connection",
        Action.PROVIDE_OWN_CONNECTION: "provide_own_connection",
        Action.DELETE: "delete",
        Action.SHARE_LINK: "share_link",
        Action.EXPORT: "edit",
    }[action]


def includes(directory: FakeDirectory, principal: str, user: str) -> bool:
    if principal == user:
        return True
    if principal in directory.groups:
        return user in directory.groups[principal]
    if principal in directory.channels:
        return user in directory.channels[principal]
    return False


def model_roles(directory: FakeDirectory, kind: str, shares: dict[str, str], user: str) -> set[str]:
    roles = set()
    if user == CREATOR:
        roles.add("creator")
    if any(r == "owner" and includes(directory, p, user) for p, r in shares.items()):
        roles.add("owner")
    if kind == "instant" and any(
        r == "runner" and includes(directory, p, user) for p, r in shares.items()
    ):
        roles.add("runner")
    if user in directory.admins:
        roles.add("admin")
    return roles


def model_allows(roles: set[str], row: str) -> bool:
    return any(TABLE[row][role] for role in roles)


# ---------------------------------------------------------------------- operations

share_op = st.tuples(
    st.just("share"),
    st.sampled_from(USERS),
    st.sampled_from(PRINCIPALS),
    st.sampled_from(["owner", "runner"]),
)
unshare_op = st.tuples(st.just("unshare"), st.sampled_from(USERS), st.sampled_from(PRINCIPALS))
join_op = st.tuples(
    st.sampled_from(["join", "leave"]),
    st.sampled_from([*GROUPS, *CHANNELS]),
    st.sampled_from(USERS),
)
admin_op = st.tuples(st.sampled_from(["make_admin", "drop_admin"]), st.sampled_from(USERS))
operations = st.lists(st.one_of(share_op, unshare_op, join_op, admin_op), max_size=14)


def make_flow(kind: str, shares: dict[str, str]) -> FlowRecord:
    definition = _DEFINITIONS.get(kind)
    if definition is None:
        definition = _DEFINITIONS[kind] = _definition(kind)
    return FlowRecord(
        id="F0PROP00",
        team_id=TEAM,
        definition=definition,
        creator=CREATOR,
        shares=[
            Share(principal=p, role=r, added_by=CREATOR, added_at=NOW)  # type: ignore[arg-type]
            for p, r in shares.items()
        ],
        created_at=NOW,
        updated_at=NOW,
        updated_by=CREATOR,
    )


_DEFINITIONS: dict[str, FlowDefinition] = {}


def _definition(kind: str) -> FlowDefinition:
    data: dict[str, object] = {
        "name": "Prop flow",
        "kind": kind,
        "steps": [{"type": "post_message", "channel": "#general", "text": "hi"}],
    }
    if kind == "scheduled":
        data["trigger"] = {"type": "schedule", "cron": "0 9 * * *", "timezone": "UTC"}
    elif kind == "automated":
        data["trigger"] = {"type": "webhook"}
    return definition_from_dict(data)


async def check_everyone(directory: FakeDirectory, kind: str, shares: dict[str, str]) -> None:
    flow = make_flow(kind, shares)
    for user in USERS:
        access = await resolve_access(flow, user, directory)
        roles = model_roles(directory, kind, shares, user)
        for action in Action:
            expected = model_allows(roles, row_of(action, kind))
            assert allowed(action, flow, access) is expected, (user, action, roles, shares)
        # Run history: owners see every run, run-only users their own only.
        mine = may_view_run(flow, access, user, started_by=user)
        theirs = may_view_run(flow, access, user, started_by="U0SOMEONE")
        assert mine is model_allows(roles, "own_runs")
        assert theirs is model_allows(roles, "full_history")
        # A run nobody in particular started (a schedule's) is everyone's: owners only.
        assert may_view_run(flow, access, user, started_by=None) is theirs
        # Once the flow is deleted, only whoever started a run still sees it.
        assert may_view_run_of_deleted_flow(user, started_by=user)
        assert not may_view_run_of_deleted_flow(user, started_by="U0SOMEONE")
        # Sharing commands tell someone who may not even see the flow (and is no admin)
        # that it does not exist.
        seen = model_allows(roles, row_of(Action.VIEW, kind)) or "admin" in roles
        assert hides_flow(flow, access) is not seen


async def play(kind: str, ops: list[tuple[str, ...]], admins: set[str]) -> None:
    directory = FakeDirectory()
    directory.admins |= admins
    shares: dict[str, str] = {}
    for op in ops:
        if op[0] == "share":
            _, actor, principal, role = op
            flow = make_flow(kind, shares)
            access = await resolve_access(flow, actor, directory)
            may = may_add(flow, access, principal, role, actor)
            actor_roles = model_roles(directory, kind, shares, actor)
            entitled = (
                model_allows(actor_roles, "manage_sharing")
                and principal != CREATOR
                and (role == "owner" or kind == "instant")
            )
            assert may is entitled, (op, shares)
            if may:
                shares[principal] = role
        elif op[0] == "unshare":
            _, actor, principal = op
            flow = make_flow(kind, shares)
            access = await resolve_access(flow, actor, directory)
            may = may_remove(flow, access, principal)
            actor_roles = model_roles(directory, kind, shares, actor)
            assert may is (model_allows(actor_roles, "manage_sharing") and principal != CREATOR)
            if may:
                shares.pop(principal, None)
        elif op[0] in ("join", "leave"):
            _, where, user = op
            members = directory.groups.get(where)
            if members is None:
                members = directory.channels[where]
            (members.add if op[0] == "join" else members.discard)(user)
        elif op[0] == "make_admin":
            directory.admins.add(op[1])
        else:
            directory.admins.discard(op[1])
        # The creator is an owner whatever happens.
        creator = await resolve_access(make_flow(kind, shares), CREATOR, directory)
        assert creator.is_creator and creator.is_owner
        await check_everyone(directory, kind, shares)


@settings(max_examples=60, deadline=None)
@given(
    kind=st.sampled_from(["instant", "scheduled", "automated"]),
    ops=operations,
    admins=st.sets(st.sampled_from(USERS), max_size=2),
)
def test_random_sharing_never_grants_more_than_the_table(
    kind: str, ops: list[tuple[str, ...]], admins: set[str]
) -> None:
    asyncio.run(play(kind, ops, admins))


@settings(max_examples=40, deadline=None)
@given(
    creators=st.none() | st.lists(st.sampled_from([*USERS, *GROUPS, *CHANNELS]), max_size=3),
    members=st.sets(st.sampled_from(USERS), max_size=3),
    admins=st.sets(st.sampled_from(USERS), max_size=1),
    user=st.sampled_from(USERS),
)
def test_creation_policy_is_everyone_or_the_listed_principals_and_admins(
    creators: list[str] | None, members: set[str], admins: set[str], user: str
) -> None:
    directory = FakeDirectory()
    directory.groups["S0ONE"] = set(members)
    directory.channels["C0ONE"] = set(members)
    directory.admins = set(admins)
    got = asyncio.run(may_create_flows(TEAM, user, creators, directory))
    if creators is None:
        expected = True
    else:
        expected = user in admins or any(includes(directory, p, user) for p in creators)
    assert got is expected
    # Only workspace admins change the policy.
    assert asyncio.run(may_set_creation_policy(TEAM, user, directory)) is (user in admins)


def test_a_runner_who_is_also_an_admin_has_both_columns() -> None:
    """Roles add up: run-only through a channel plus admin may run and manage sharing."""
    directory = FakeDirectory()
    directory.admins.add("U0A")
    directory.channels["C0ONE"] = {"U0A"}
    flow = make_flow("instant", {"C0ONE": "runner"})
    access = asyncio.run(resolve_access(flow, "U0A", directory))
    assert access.is_runner and access.is_admin and access.via == "C0ONE"
    assert allowed(Action.RUN, flow, access)
    assert allowed(Action.MANAGE_SHARING, flow, access)
    assert not allowed(Action.EDIT, flow, access)
    assert not allowed(Action.VIEW_HISTORY, flow, access)


def test_run_only_shares_grant_nothing_on_scheduled_flows() -> None:
    directory = FakeDirectory()
    flow = make_flow("scheduled", {"U0A": "runner"})
    access = asyncio.run(resolve_access(flow, "U0A", directory))
    assert access.role == "none"
    assert not any(allowed(action, flow, access) for action in Action)
    owner = asyncio.run(resolve_access(flow, CREATOR, directory))
    assert not may_add(flow, owner, "U0B", "runner", CREATOR)
    assert may_add(flow, owner, "U0B", "owner", CREATOR)
    assert not may_add(flow, owner, CREATOR, "owner", CREATOR)
    assert not may_add(flow, owner, "bob", "owner", CREATOR)
    assert not may_remove(flow, owner, CREATOR)


def test_a_direct_share_wins_over_a_group_for_via() -> None:
    directory = FakeDirectory()
    directory.groups["S0ONE"] = {"U0A"}
    flow = make_flow("instant", {"S0ONE": "owner", "U0A": "owner"})
    access = asyncio.run(resolve_access(flow, "U0A", directory))
    assert access.is_owner and access.via is None
    access_b = asyncio.run(
        resolve_access(make_flow("instant", {"S0ONE": "owner"}), "U0A", directory)
    )
    assert access_b.via == "S0ONE"
