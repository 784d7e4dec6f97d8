"""`flows.catalog.FlowStore` (with the sharing and connections views of it): names,
versions, compare-and-swap of shares and bindings, queries by trigger and connection."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest

from flows.catalog import FlowNotFound, FlowStore, NameTaken, VersionConflict
from flows.definition import parse_definition
from flows.records import SlotBinding
from tests.builders import ALICE, BOB, CAROL, OTHER_TEAM, T0, TEAM, flow_record, share

LATER = T0 + timedelta(hours=1)

SCHEDULED = """
name: Nightly
kind: scheduled
trigger: {type: schedule, cron: "0 2 * * *"}
steps:
  - {id: hello, type: post_message, channel: "#general", text: "night"}
"""


def renamed(name: str):  # type: ignore[no-untyped-def]
    return flow_record(name=name).definition


async def test_a_flow_reads_back_by_id_and_by_name_ignoring_case(flows: FlowStore) -> None:
    flow = flow_record(name="Standup")
    await flows.insert(flow)
    assert await flows.get(TEAM, "F1") == flow
    assert await flows.get_by_name(TEAM, "  STANDUP ") == flow
    assert await flows.get(OTHER_TEAM, "F1") is None
    assert await flows.get_by_name(OTHER_TEAM, "Standup") is None
    assert await flows.get_by_id("F1") == flow
    assert await flows.get_by_id("F9") is None


async def test_names_are_unique_per_workspace_ignoring_case(flows: FlowStore) -> None:
    await flows.insert(flow_record(name="Standup"))
    with pytest.raises(NameTaken):
        await flows.insert(flow_record(name="standup", flow_id="F2"))
    await flows.insert(flow_record(name="Standup", flow_id="F3", team_id=OTHER_TEAM))


async def test_replacing_the_definition_keeps_the_earlier_version(flows: FlowStore) -> None:
    flow = flow_record(name="Standup")
    await flows.insert(flow)
    saved = await flows.replace_definition(flow, renamed("Daily standup"), BOB, LATER)
    assert (saved.version, saved.name, saved.updated_by, saved.updated_at) == (
        2,
        "Daily standup",
        BOB,
        LATER,
    )
    assert await flows.get_by_name(TEAM, "daily standup") == saved
    assert await flows.get_by_name(TEAM, "Standup") is None
    versions = await flows.versions(TEAM, "F1")
    assert [(v.version, v.definition.name, v.saved_by) for v in versions] == [
        (1, "Standup", ALICE),
        (2, "Daily standup", BOB),
    ]


async def test_a_stale_edit_is_a_version_conflict(flows: FlowStore) -> None:
    flow = flow_record(name="Standup")
    await flows.insert(flow)
    await flows.replace_definition(flow, renamed("Standup 2"), BOB, LATER)
    with pytest.raises(VersionConflict) as conflict:
        await flows.replace_definition(flow, renamed("Standup 3"), CAROL, LATER)
    assert (conflict.value.expected, conflict.value.current, conflict.value.saved_by) == (
        1,
        2,
        BOB,
    )


async def test_renaming_onto_another_flow_is_refused(flows: FlowStore) -> None:
    flow = flow_record(name="Standup")
    await flows.insert(flow)
    await flows.insert(flow_record(name="Retro", flow_id="F2"))
    with pytest.raises(NameTaken):
        await flows.replace_definition(flow, renamed("RETRO"), ALICE, LATER)
    assert (await flows.get(TEAM, "F1")) == flow


async def test_replacing_a_deleted_flow_is_not_found(flows: FlowStore) -> None:
    flow = flow_record()
    await flows.insert(flow)
    assert await flows.delete(TEAM, "F1")
    with pytest.raises(FlowNotFound):
        await flows.replace_definition(flow, renamed("Again"), ALICE, LATER)


async def test_delete_removes_the_flow_and_its_versions(flows: FlowStore) -> None:
    flow = flow_record()
    await flows.insert(flow)
    await flows.replace_definition(flow, renamed("Two"), ALICE, LATER)
    assert not await flows.delete(OTHER_TEAM, "F1")
    assert await flows.delete(TEAM, "F1")
    assert not await flows.delete(TEAM, "F1")
    assert await flows.get(TEAM, "F1") is None
    assert await flows.versions(TEAM, "F1") == []


async def test_enabling_is_not_a_new_version(flows: FlowStore) -> None:
    await flows.insert(flow_record())
    off = await flows.set_enabled(TEAM, "F1", False, BOB, LATER)
    assert off is not None and not off.enabled
    assert (off.version, off.updated_by) == (1, ALICE)
    assert await flows.set_enabled(TEAM, "F9", False, BOB, LATER) is None


async def test_list_enabled_by_trigger_type_and_workspace(flows: FlowStore) -> None:
    nightly = parse_definition(SCHEDULED)
    await flows.insert(flow_record(SCHEDULED, flow_id="F1"))
    await flows.insert(flow_record(SCHEDULED, flow_id="F2", team_id=OTHER_TEAM))
    await flows.insert(flow_record(SCHEDULED.replace("Nightly", "Paused"), flow_id="F3"))
    await flows.set_enabled(TEAM, "F3", False, ALICE, LATER)
    assert nightly.trigger.type == "schedule"
    assert sorted(f.id for f in await flows.list_enabled("schedule")) == ["F1", "F2"]
    assert [f.id for f in await flows.list_enabled("schedule", TEAM)] == ["F1"]
    assert await flows.list_enabled("message", TEAM) == []


async def test_enabled_versions_and_get_many_serve_the_schedule_resync(flows: Any) -> None:
    await flows.insert(flow_record(SCHEDULED, flow_id="F1"))
    await flows.insert(flow_record(SCHEDULED, flow_id="F2", team_id=OTHER_TEAM))
    await flows.insert(flow_record(SCHEDULED.replace("Nightly", "Paused"), flow_id="F3"))
    await flows.set_enabled(TEAM, "F3", False, ALICE, LATER)
    assert await flows.enabled_versions("schedule") == {"F1": (TEAM, 1), "F2": (OTHER_TEAM, 1)}
    assert await flows.enabled_versions("message") == {}
    assert sorted(f.id for f in await flows.get_many(["F2", "F3", "F9"])) == ["F2", "F3"]
    assert await flows.get_many([]) == []


async def test_enabled_versions_of_says_which_flows_may_still_fire(flows: Any) -> None:
    await flows.insert(flow_record(SCHEDULED, flow_id="F1"))
    await flows.insert(flow_record(SCHEDULED, flow_id="F2", team_id=OTHER_TEAM))
    await flows.insert(flow_record(SCHEDULED.replace("Nightly", "Paused"), flow_id="F3"))
    await flows.set_enabled(TEAM, "F3", False, ALICE, LATER)
    found = await flows.enabled_versions_of(["F1", "F2", "F3", "F9"])
    assert found == {"F1": (TEAM, 1), "F2": (OTHER_TEAM, 1)}
    assert await flows.enabled_versions_of([]) == {}


async def test_list_enabled_finds_flows_with_the_default_trigger(flows: FlowStore) -> None:
    # `to_dict` leaves the default (manual) trigger out of the stored definition.
    await flows.insert(flow_record(name="Manual", flow_id="F4"))
    assert [f.id for f in await flows.list_enabled("manual", TEAM)] == ["F4"]


async def test_candidates_are_own_flows_and_flows_shared_with_the_user_or_a_group(
    flows: FlowStore,
) -> None:
    await flows.insert(flow_record(name="Mine", flow_id="F1", creator=BOB))
    await flows.insert(flow_record(name="Direct", flow_id="F2", shares=[share(BOB)]))
    await flows.insert(flow_record(name="Group", flow_id="F3", shares=[share("S0LEADS")]))
    await flows.insert(flow_record(name="Channel", flow_id="F4", shares=[share("C0GENERAL")]))
    await flows.insert(flow_record(name="Carol's", flow_id="F5", shares=[share(CAROL)]))
    await flows.insert(flow_record(name="Elsewhere", flow_id="F6", team_id=OTHER_TEAM, creator=BOB))
    found = await flows.list_candidates(TEAM, BOB)
    assert sorted(f.id for f in found) == ["F1", "F2", "F3", "F4"]


async def test_shares_change_by_compare_and_swap(flows: FlowStore) -> None:
    flow = flow_record()
    await flows.insert(flow)
    shared = await flows.set_shares(TEAM, "F1", [share(BOB)], expected=[])  # type: ignore[attr-defined]
    assert shared is not None and shared.principals("runner") == [BOB]
    # Someone changed the list meanwhile: the stale writer gets None and must re-read.
    stale = await flows.set_shares(TEAM, "F1", [share(CAROL)], expected=[])  # type: ignore[attr-defined]
    assert stale is None
    assert await flows.set_shares(TEAM, "F9", [], expected=[]) is None  # type: ignore[attr-defined]
    stored = await flows.get(TEAM, "F1")
    assert stored is not None and stored.shares == [share(BOB)]


async def test_bindings_change_by_compare_and_swap(flows: FlowStore) -> None:
    await flows.insert(flow_record(flow_id="F1"))
    await flows.insert(flow_record(name="Two", flow_id="F2"))
    binding = SlotBinding(slot="api", connection_id="K1", added_by=ALICE)
    bound = await flows.set_bindings(TEAM, "F1", [binding], expected=[])
    assert bound is not None and bound.bindings == [binding]
    assert await flows.set_bindings(TEAM, "F1", [], expected=[]) is None
    other = SlotBinding(slot="api", connection_id="K2", added_by=ALICE)
    assert await flows.set_bindings(TEAM, "F2", [other], expected=[])
    assert [f.id for f in await flows.flows_using_connection(TEAM, "K1")] == ["F1"]
    using = await flows.flows_using_connections(TEAM, ["K1", "K2"])  # type: ignore[attr-defined]
    assert sorted(f.id for f in using) == ["F1", "F2"]
    assert await flows.flows_using_connection(OTHER_TEAM, "K1") == []


async def test_the_webhook_hash_is_kept(flows: FlowStore) -> None:
    await flows.insert(flow_record())
    await flows.set_webhook_hash(TEAM, "F1", "abc123")
    stored = await flows.get(TEAM, "F1")
    assert stored is not None and stored.webhook_token_hash == "abc123"


async def test_list_team_lists_every_flow_of_a_workspace(flows: FlowStore) -> None:
    await flows.insert(flow_record(flow_id="F1"))
    await flows.insert(flow_record(flow_id="F2", team_id=OTHER_TEAM))
    assert [f.id for f in await flows.list_team(TEAM)] == ["F1"]  # type: ignore[attr-defined]
