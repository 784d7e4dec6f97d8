"""Automated flows started by Slack events, delivered signed over HTTP by the driver.

One event makes one run however often Slack delivers it (X-Slack-Retry-Num); the bot's own
messages, edits and deletions start nothing; chains stop at the configured depth.
"""

from __future__ import annotations

import asyncio
from typing import Any

from flows.triggers import METADATA_EVENT_TYPE
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    TEAM,
    BotHarness,
    create_flow,
    deps,
    finished_run,
    runs_of,
)

INTAKE = """
name: Incident intake
kind: automated
trigger:
  type: message
  channel: "#incidents"
  pattern: '^sev(\\d) (?P<service>[a-z-]+)'
steps:
  - type: post_message
    channel: "#general"
    text: "SEV{{ trigger.match[0] }} on {{ trigger.groups.service }} from <@{{ trigger.user }}>"
"""

FLAGGED = """
name: Flagged
kind: automated
trigger: {type: reaction, emoji: ":rotating_light:", channel: "<#C0INCIDENTS|incidents>"}
steps:
  - type: post_message
    channel: "#general"
    text: "flagged {{ trigger.ts }} by {{ trigger.user }}"
"""

WELCOME = """
name: Welcome
kind: automated
trigger: {type: member_joined, channel: "C0INCIDENTS"}
steps:
  - {type: send_dm, user: "{{ trigger.user }}", text: "Welcome to <#{{ trigger.channel }}>"}
"""


async def deliver_with_retries(bot: BotHarness, event: dict[str, Any]) -> None:
    """The first delivery and Slack's three retries of the same event id."""
    first = await bot.driver.event(event)
    assert first.status == 200 and first.elapsed < 3
    event_id = bot.driver.last_event_id
    for retry in (1, 2, 3):
        again = await bot.driver.event(event, event_id=event_id, retry_num=retry)
        assert again.status == 200 and again.elapsed < 3


def channels(bot: BotHarness) -> None:
    bot.emulator.add_channel("C0INCIDENTS", "incidents", members=[ALICE, BOB])


async def test_a_message_delivered_four_times_starts_one_run(bot: BotHarness) -> None:
    channels(bot)
    flow = await create_flow(bot, INTAKE)
    event = bot.driver.message_event(BOB, "C0INCIDENTS", "sev2 billing-api is down")
    await deliver_with_retries(bot, event)
    [run] = await finished_run(bot, flow.id)
    await asyncio.sleep(0.3)  # nothing more comes
    assert len(await runs_of(bot, flow.id)) == 1
    assert run.status == "succeeded", run.error
    assert run.run_key == f"evt:{bot.driver.last_event_id}:{flow.id}"
    assert run.trigger.type == "message" and run.trigger.user == BOB and run.depth == 1
    assert run.trigger.data["groups"] == {"service": "billing-api"}
    assert run.trigger.data["matched"] == "sev2 billing-api"
    texts = [m["text"] for m in bot.emulator.messages_in("#general")]
    assert texts == [f"SEV2 on billing-api from <@{BOB}>"]


async def test_what_must_not_start_a_flow_starts_nothing(bot: BotHarness) -> None:
    channels(bot)
    flow = await create_flow(bot, INTAKE)
    emu, driver = bot.emulator, bot.driver
    ignored = [
        driver.message_event(BOB, "#general", "sev1 billing"),  # another channel
        driver.message_event(BOB, "C0INCIDENTS", "is sev1 billing down?"),  # no match
        # The bot's own message (its user and bot id), and one from its app by bot id only.
        driver.message_event(emu.bot_user_id, "C0INCIDENTS", "sev1 billing", bot_id=emu.bot_id),
        {
            **driver.message_event(CAROL, "C0INCIDENTS", "sev1 billing"),
            "user": None,
            "bot_id": emu.bot_id,
            "bot_profile": {"id": emu.bot_id, "app_id": emu.app_id},
        },
        driver.message_event(BOB, "C0INCIDENTS", "sev1 billing", subtype="message_changed"),
        driver.message_event(BOB, "C0INCIDENTS", "sev1 billing", subtype="message_deleted"),
        driver.message_event(BOB, "C0INCIDENTS", "sev1 billing", subtype="channel_join"),
        # A message a flow posted at the maximum depth (3): one more would be depth 4.
        {
            **driver.message_event(CAROL, "C0INCIDENTS", "sev1 billing"),
            "metadata": {"event_type": METADATA_EVENT_TYPE, "event_payload": {"depth": 3}},
        },
    ]
    for event in ignored:
        response = await driver.event(event)
        assert response.status == 200
    await asyncio.sleep(0.5)
    assert await runs_of(bot, flow.id) == []
    # At depth 2 the chain may go on once more (depth 3).
    deep = {
        **driver.message_event(CAROL, "C0INCIDENTS", "sev3 search"),
        "metadata": {"event_type": METADATA_EVENT_TYPE, "event_payload": {"depth": 2}},
    }
    await driver.event(deep)
    [run] = await finished_run(bot, flow.id)
    assert run.depth == 3
    # Another bot (an integration) may start flows: only Flowbot's own messages are ignored.
    await driver.event(driver.message_event(CAROL, "C0INCIDENTS", "sev4 pager", bot_id="B0OTHER"))
    await finished_run(bot, flow.id, count=2)


async def test_a_disabled_flow_is_not_started(bot: BotHarness) -> None:
    channels(bot)
    flow = await create_flow(bot, INTAKE)
    await deps(bot).catalog.set_enabled(TEAM, ALICE, flow.id, False)
    await bot.driver.event(bot.driver.message_event(BOB, "C0INCIDENTS", "sev1 billing"))
    await asyncio.sleep(0.4)
    assert await runs_of(bot, flow.id) == []


async def test_reactions_and_joins_start_their_flows_once(bot: BotHarness) -> None:
    channels(bot)
    flagged = await create_flow(bot, FLAGGED)
    welcome = await create_flow(bot, WELCOME)
    ts = "1700000000.000100"
    # A reaction with a skin tone is the same emoji; elsewhere or another emoji: nothing.
    await bot.driver.event(bot.driver.reaction_event(CAROL, "rotating_light", "#general", ts))
    await bot.driver.event(bot.driver.reaction_event(CAROL, "eyes", "C0INCIDENTS", ts))
    event = bot.driver.reaction_event(CAROL, "rotating_light::skin-tone-2", "C0INCIDENTS", ts)
    await deliver_with_retries(bot, event)
    [run] = await finished_run(bot, flagged.id)
    assert run.trigger.type == "reaction" and run.trigger.user == CAROL
    assert run.trigger.data["ts"] == ts and run.trigger.data["channel"] == "C0INCIDENTS"
    await deliver_with_retries(bot, bot.driver.member_joined_event(CAROL, "C0INCIDENTS", BOB))
    await bot.driver.event(bot.driver.member_joined_event(CAROL, "#general"))
    [joined] = await finished_run(bot, welcome.id)
    assert joined.trigger.type == "member_joined" and joined.trigger.data["inviter"] == BOB
    await asyncio.sleep(0.3)
    assert len(await runs_of(bot, flagged.id)) == 1
    assert len(await runs_of(bot, welcome.id)) == 1
    dm = bot.emulator.messages_in(CAROL)
    assert [m["text"] for m in dm] == ["Welcome to <#C0INCIDENTS>"]


RELAY = """
name: Relay
kind: automated
trigger: {type: message, channel: "#incidents", pattern: '^relay'}
steps:
  - {type: post_message, channel: "#incidents", text: "relay from {{ run.id }}"}
  - {type: send_dm, user: "<@U0BOB>", text: "relayed {{ run.id }}"}
"""


async def test_messages_runs_post_carry_their_depth_and_a_chain_stops_at_the_limit(
    bot: BotHarness,
) -> None:
    """A message a run posted, seen again as an event (by another Flowbot app in the
    channel, or delivered anew), continues the chain one level deeper, up to the limit."""
    channels(bot)
    flow = await create_flow(bot, RELAY)
    emu, driver = bot.emulator, bot.driver
    await driver.event(driver.message_event(BOB, "C0INCIDENTS", "relay please"))
    for depth in (1, 2, 3):
        runs = await finished_run(bot, flow.id, count=depth)
        run = runs[-1]
        assert run.status == "succeeded" and run.depth == depth, run.error
        # Both the channel post and the DM name the run, its flow and its depth.
        expected = {
            "event_type": METADATA_EVENT_TYPE,
            "event_payload": {"run_id": run.id, "flow_id": flow.id, "depth": depth},
        }
        posted = emu.messages_in("C0INCIDENTS")[-1]
        assert posted["text"] == f"relay from {run.id}" and posted["metadata"] == expected
        dm = emu.messages_in(BOB)[-1]
        assert dm["text"] == f"relayed {run.id}" and dm["metadata"] == expected
        # The post comes back as another app's message, metadata included.
        seen = {
            **driver.message_event("U0OTHERBOT", "C0INCIDENTS", posted["text"], bot_id="B0OTHER"),
            "metadata": posted["metadata"],
        }
        await driver.event(seen)
    await asyncio.sleep(0.5)  # the depth-3 post would start a depth-4 run: nothing comes
    assert [r.depth for r in await runs_of(bot, flow.id)] == [1, 2, 3]
    # Flowbot's own post delivered to itself is never a trigger, whatever its depth.
    own = {
        **driver.message_event(emu.bot_user_id, "C0INCIDENTS", "relay", bot_id=emu.bot_id),
        "metadata": {"event_type": METADATA_EVENT_TYPE, "event_payload": {"depth": 0}},
    }
    await driver.event(own)
    await asyncio.sleep(0.3)
    assert len(await runs_of(bot, flow.id)) == 3
