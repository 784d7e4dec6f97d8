"""SPEC §4's permission table (`flows.permissions`), with a Directory of fixed members."""

from __future__ import annotations

import pytest

from flows.permissions import (
    Action,
    allowed,
    hides_flow,
    may_add,
    may_create_flows,
    may_remove,
    may_view_run,
    resolve_access,
)
from tests.builders import ALICE, BOB, CAROL, DAVE, TEAM, flow_record, share
from tests.unit.conftest import directory

ADMIN = "U0ADMIN"

SCHEDULED = """
name: Nightly
kind: scheduled
trigger: {type: schedule, cron: "0 2 * * *"}
steps:
  - {id: hello, type: post_message, channel: "#general", text: "night"}
"""

INSTANT = flow_record(shares=[share(BOB, "owner"), share("S0LEADS", "runner")])
SCHEDULED_FLOW = flow_record(SCHEDULED, shares=[share(BOB, "runner"), share(CAROL, "owner")])


@pytest.mark.parametrize(
    ("user", "role", "via"),
    [
        (ALICE, "creator", None),
        (BOB, "owner", None),  # a direct share wins over the group
        (CAROL, "runner", "S0LEADS"),
        (DAVE, "none", None),
        (ADMIN, "admin", None),
        ("", "none", None),
    ],
)
async def test_access_is_resolved_through_shares_and_groups(
    user: str, role: str, via: str | None
) -> None:
    access = await resolve_access(INSTANT, user, directory())
    assert (access.role, access.via) == (role, via)


async def test_each_role_gets_its_column() -> None:
    folks = directory()
    creator = await resolve_access(INSTANT, ALICE, folks)
    runner = await resolve_access(INSTANT, CAROL, folks)
    admin = await resolve_access(INSTANT, ADMIN, folks)
    stranger = await resolve_access(INSTANT, DAVE, folks)
    assert all(allowed(action, INSTANT, creator) for action in Action)
    assert allowed(Action.RUN, INSTANT, runner) and allowed(Action.SHARE_LINK, INSTANT, runner)
    assert not allowed(Action.EDIT, INSTANT, runner)
    assert not allowed(Action.VIEW_HISTORY, INSTANT, runner)
    assert allowed(Action.MANAGE_SHARING, INSTANT, admin)
    assert not allowed(Action.RUN, INSTANT, admin)
    assert hides_flow(INSTANT, stranger) and not hides_flow(INSTANT, admin)


async def test_run_only_shares_grant_nothing_on_a_scheduled_flow() -> None:
    folks = directory()
    bob = await resolve_access(SCHEDULED_FLOW, BOB, folks)
    assert bob.role == "none" and hides_flow(SCHEDULED_FLOW, bob)
    carol = await resolve_access(SCHEDULED_FLOW, CAROL, folks)
    assert allowed(Action.RUN, SCHEDULED_FLOW, carol)


async def test_run_only_users_see_their_own_runs_only() -> None:
    runner = await resolve_access(INSTANT, CAROL, directory())
    owner = await resolve_access(INSTANT, BOB, directory())
    assert may_view_run(INSTANT, runner, CAROL, started_by=CAROL)
    assert not may_view_run(INSTANT, runner, CAROL, started_by=ALICE)
    assert not may_view_run(INSTANT, runner, CAROL, started_by=None)
    assert may_view_run(INSTANT, owner, BOB, started_by=ALICE)


async def test_sharing_never_removes_or_adds_the_creator() -> None:
    folks = directory()
    owner = await resolve_access(INSTANT, BOB, folks)
    runner = await resolve_access(INSTANT, CAROL, folks)
    assert may_remove(INSTANT, owner, CAROL) and not may_remove(INSTANT, owner, ALICE)
    assert not may_remove(INSTANT, runner, DAVE)
    assert may_add(INSTANT, owner, DAVE, "runner", BOB)
    assert not may_add(INSTANT, owner, ALICE, "owner", BOB)
    assert not may_add(INSTANT, owner, "dave", "owner", BOB)
    assert not may_add(SCHEDULED_FLOW, owner, DAVE, "runner", BOB)


async def test_the_creation_policy() -> None:
    folks = directory()
    assert await may_create_flows(TEAM, DAVE, None, folks)
    assert await may_create_flows(TEAM, CAROL, ["S0LEADS"], folks)
    assert not await may_create_flows(TEAM, DAVE, ["S0LEADS"], folks)
    assert await may_create_flows(TEAM, ADMIN, [], folks)
    assert not await may_create_flows(TEAM, "", ["S0LEADS"], folks)
