"""Slack events that start automated flows (`message`, `reaction_added`,
`member_joined_channel`), and the Slack adapters of scheduled and automated flows: channel
names for triggers, and the DM telling owners that scheduled runs were skipped.

Bolt acknowledges events before the listeners run (`process_before_response=False`) and
already drops the bot's own events; `flows.triggers.parse_event` drops the rest of what
must not start a flow (edits, deletions, other subtypes, the bot's messages by bot id).
"""

from __future__ import annotations

import logging
import time
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext
from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from cards import schedules as schedule_cards
from flows.definition import ScheduleTrigger
from flows.ports import Messenger
from flows.records import FlowRecord
from flows.scheduling import SkippedSlots
from flows.triggers import parse_event
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)

EVENT_TYPES = ("message", "reaction_added", "member_joined_channel")


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    async def on_event(body: dict[str, Any], context: AsyncBoltContext) -> None:
        triggers = deps.triggers
        event = parse_event(body, context.bot_user_id, context.bot_id)
        if event is None:
            return
        try:
            await triggers.handle_event(event)
        except Exception:
            log.exception("event %s (%s) could not start flows", event.event_id, event.type)

    for event_type in EVENT_TYPES:
        app.event(event_type)(on_event)


class SlackChannelNames:
    """`flows.triggers.ChannelNames` through `conversations.info`, cached a few minutes
    (a renamed channel matches its new name after `ttl` seconds at most)."""

    def __init__(self, client: AsyncWebClient, ttl: float = 300.0, miss_ttl: float = 30.0):
        self.client = client
        self.ttl = ttl
        self.miss_ttl = miss_ttl
        self._cache: dict[tuple[str, str], tuple[float, str | None]] = {}

    async def channel_name(self, team_id: str, channel_id: str) -> str | None:
        key = (team_id, channel_id)
        hit = self._cache.get(key)
        if hit is not None:
            age = time.monotonic() - hit[0]
            if age < (self.ttl if hit[1] is not None else self.miss_ttl):
                return hit[1]
        try:
            response = await self.client.conversations_info(channel=channel_id)
            name = (response.get("channel") or {}).get("name")
        except SlackApiError as exc:
            log.info("conversations.info %s failed: %s", channel_id, exc.response.get("error"))
            name = None
        if len(self._cache) > 10_000:
            self._cache.clear()
        self._cache[key] = (time.monotonic(), str(name) if name else None)
        return str(name) if name else None


def direct_owners(flow: FlowRecord) -> list[str]:
    """The creator and the co-owners named directly (users, not groups or channels)."""
    owners = [flow.creator]
    for principal in flow.principals("owner"):
        if principal.startswith(("U", "W")) and principal not in owners:
            owners.append(principal)
    return owners


class SlackScheduleNotifier:
    """`flows.scheduling.ScheduleNotifier`: a DM to each direct owner of the flow."""

    def __init__(self, messenger: Messenger) -> None:
        self.messenger = messenger

    async def slots_skipped(
        self, flow: FlowRecord, skipped: SkippedSlots, next_run: datetime | None
    ) -> None:
        trigger = flow.definition.trigger
        tz = trigger.timezone if isinstance(trigger, ScheduleTrigger) else "UTC"
        card = schedule_cards.skipped_message(
            flow.name, skipped.count, skipped.capped, skipped.first, skipped.last, tz, next_run
        )
        for owner in direct_owners(flow):
            try:
                await self.messenger.send_dm(owner, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("could not DM %s about skipped runs: %s", owner, exc)
