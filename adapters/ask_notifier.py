"""Asks reach Slack: the Fill in button (DMs, or a post in each channel named), the
updates once answered, reminders and the pending lists, rendered with `cards.asks`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable

from slack_sdk.errors import SlackApiError

from adapters.approval_notifier import HomeRefresher
from cards import asks as cards
from flows.ask_model import AskMessage, AskRecord
from flows.ports import Messenger
from flows.records import MessageRef

log = logging.getLogger(__name__)


class SlackAskNotifier:
    """Implements `flows.ask_model.AskNotifier`. One person's Slack failing (a DM
    refused) does not keep the others from being asked."""

    def __init__(
        self,
        messenger: Messenger,
        bot_user: Callable[[], Awaitable[str | None]],
        refresh_home: HomeRefresher | None = None,
    ) -> None:
        self.messenger = messenger
        self._bot_user = bot_user
        self.refresh_home = refresh_home

    async def send_request(self, record: AskRecord) -> list[AskMessage]:
        card = cards.request_message(record)
        posts: list[AskMessage] = []
        for channel in record.channels:
            ref = await self.messenger.post_message(channel, card["text"], card["blocks"])
            posts.append(AskMessage(channel=ref.channel, ts=ref.ts))

        async def dm(user: str) -> AskMessage | None:
            try:
                ref = await self.messenger.send_dm(user, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("ask %s: DM to %s failed: %s", record.id, user, exc)
                return None
            return AskMessage(channel=ref.channel, ts=ref.ts, person=user)

        sent = await asyncio.gather(*(dm(user) for user in record.direct))
        return posts + [m for m in sent if m is not None]

    async def show_outcome(self, record: AskRecord) -> None:
        card = cards.closed_message(record)

        async def update(item: AskMessage) -> None:
            try:
                ref = MessageRef(channel=item.channel, ts=item.ts)
                await self.messenger.update_message(ref, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("ask %s: updating %s failed: %s", record.id, item.ts, exc)

        await asyncio.gather(*(update(item) for item in record.messages))

    async def remind(self, record: AskRecord) -> None:
        card = cards.reminder_message(record)
        for user in record.people:
            try:
                await self.messenger.send_dm(user, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("ask %s: reminder to %s failed: %s", record.id, user, exc)

    async def bot_user(self) -> str | None:
        return await self._bot_user()

    async def refresh_lists(self, record: AskRecord) -> None:
        if self.refresh_home is None:
            return
        for user in record.people:
            try:
                await self.refresh_home(record.team_id, user)
            except SlackApiError as exc:
                log.warning("ask %s: refreshing the home of %s failed: %s", record.id, user, exc)
