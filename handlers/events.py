"""Slack events that start automated flows: `message`, `reaction_added`,
`member_joined_channel`.

Bolt acknowledges events before the listeners run (`process_before_response=False`) and
already drops the bot's own events; `flows.triggers.parse_event` drops the rest of what
must not start a flow (edits, deletions, other subtypes, the bot's messages by bot id).
A failure is logged by the app's error handler: nobody is waiting for an answer.
"""

from __future__ import annotations

from typing import Any

from slack_bolt.async_app import AsyncApp, AsyncBoltContext

from flows.triggers import parse_event
from handlers.deps import HandlerDeps

EVENT_TYPES = ("message", "reaction_added", "member_joined_channel")


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    async def on_event(body: dict[str, Any], context: AsyncBoltContext) -> None:
        event = parse_event(body, context.bot_user_id, context.bot_id, keep_own=True)
        if event is not None:
            await deps.triggers.handle_event(event)

    for event_type in EVENT_TYPES:
        app.event(event_type)(on_event)
