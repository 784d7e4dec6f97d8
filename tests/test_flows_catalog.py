"""The flow catalog and its MongoDB store, through the bot's own wiring."""

from __future__ import annotations

import asyncio

import pytest

from flows.catalog import FlowNotFound, NameTaken, VersionConflict
from flows.definition import parse_definition
from flows.errors import NotAllowed
from tests.support import ALICE, BOB, CAROL, TEAM, BotHarness, create_flow, plant_share

FLOW = """\
name: Ping
steps:
  - {type: post_message, channel: "#general", text: "ping {{ run.id }}"}
"""


async def test_find_by_id_or_by_name_ignoring_case(bot: BotHarness) -> None:
    catalog = bot.flowbot.deps.catalog
    flow = (await catalog.create(TEAM, ALICE, parse_definition(FLOW))).flow
    assert (await catalog.find(TEAM, flow.id)).id == flow.id
    assert (await catalog.find(TEAM, "  pInG ")).id == flow.id
    with pytest.raises(FlowNotFound):
        await catalog.find("T0OTHER", "Ping")  # names are per workspace
    other = (await catalog.create("T0OTHER", ALICE, parse_definition(FLOW))).flow
    assert other.id != flow.id
    with pytest.raises(NameTaken):
        await catalog.create(TEAM, BOB, parse_definition(FLOW.replace("Ping", "PING")))


async def test_the_stored_record_round_trips(bot: BotHarness) -> None:
    catalog = bot.flowbot.deps.catalog
    source = FLOW + (
        "  - id: branch\n    type: condition\n    if: \"{{ run.id == 'x' }}\"\n"
        "    then: [{type: delay, duration: 1m}]\n"
        "    else: [{type: set_variable, name: v, value: 1}]\n"
    )
    created = (await catalog.create(TEAM, ALICE, parse_definition(source))).flow
    found = await catalog.find(TEAM, created.id)
    assert found.definition == created.definition
    assert found.model_dump(exclude={"created_at", "updated_at"}) == created.model_dump(
        exclude={"created_at", "updated_at"}
    )
    doc = await bot.db["flows"].find_one({"_id": created.id})
    assert doc is not None and "if" in str(doc["definition"]) and "if_" not in str(doc)


async def test_versions_are_kept_and_listed(bot: BotHarness) -> None:
    catalog = bot.flowbot.deps.catalog
    flow = await create_flow(bot, FLOW)
    for version in (1, 2):
        text = FLOW.replace("ping", f"ping v{version + 1}")
        await catalog.update_definition(TEAM, ALICE, flow.id, parse_definition(text), version)
    history = await catalog.versions(TEAM, ALICE, "ping")
    assert [v.version for v in history] == [1, 2, 3]
    assert "ping v3" in str(history[-1].definition.steps[0])
    with pytest.raises(VersionConflict) as conflict:
        await catalog.update_definition(TEAM, ALICE, flow.id, parse_definition(FLOW), 2)
    assert conflict.value.current == 3 and conflict.value.saved_by == ALICE


async def test_racing_saves_of_one_version_let_exactly_one_win(bot: BotHarness) -> None:
    catalog = bot.flowbot.deps.catalog
    flow = await create_flow(bot, FLOW)
    texts = [FLOW.replace("ping", f"ping {n}") for n in range(5)]
    results = await asyncio.gather(
        *(catalog.update_definition(TEAM, ALICE, flow.id, parse_definition(t), 1) for t in texts),
        return_exceptions=True,
    )
    assert sum(not isinstance(r, Exception) for r in results) == 1
    assert all(isinstance(r, VersionConflict) for r in results if isinstance(r, Exception))
    assert (await catalog.find(TEAM, flow.id)).version == 2


async def test_list_for_follows_groups_and_channels(bot: BotHarness) -> None:
    catalog = bot.flowbot.deps.catalog
    flow = await create_flow(bot, FLOW)
    await plant_share(bot, flow.id, "S0LEADS", "owner")
    assert [item.flow.id for item in await catalog.list_for(TEAM, BOB)] == [flow.id]  # in S0LEADS
    assert await catalog.list_for(TEAM, CAROL) == []
    # Bob, a co-owner through the group, may edit; Carol may not.
    await catalog.set_enabled(TEAM, BOB, flow.id, False)
    with pytest.raises(NotAllowed):
        await catalog.set_enabled(TEAM, CAROL, flow.id, True)
    assert not (await catalog.find(TEAM, flow.id)).enabled


async def test_a_failing_listener_does_not_undo_the_change(bot: BotHarness) -> None:
    catalog = bot.flowbot.deps.catalog

    async def broken(team_id: str, flow_id: str) -> None:
        raise RuntimeError("scheduler down")

    catalog.on_change.append(broken)
    flow = (await catalog.create(TEAM, ALICE, parse_definition(FLOW))).flow
    assert (await catalog.find(TEAM, flow.id)).id == flow.id
