"""Asks reach Slack: the Fill in button (DMs, or a post in each channel named), the
updates once answered, reminders and the pending lists, rendered with `cards.asks`
(the Slack calls shared with approvals: `adapters.people_messages`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from adapters.people_messages import HomeRefresher, PeopleMessages
from cards import asks as cards
from flows.ask_model import AskEvent, AskMessage, AskRecord
from flows.ports import Messenger


class SlackAskNotifier(PeopleMessages):
    """Implements `flows.ask_model.AskNotifier`. One person's Slack failing (a DM
    refused) does not keep the others from being asked."""

    noun = "ask"

    def __init__(
        self,
        messenger: Messenger,
        bot_user: Callable[[], Awaitable[str | None]],
        refresh_home: HomeRefresher | None = None,
    ) -> None:
        super().__init__(messenger, refresh_home)
        self._bot_user = bot_user

    async def send_request(self, record: AskRecord) -> list[AskMessage]:
        card = cards.request_message(record)
        posts: list[AskMessage] = []
        for channel in record.channels:
            ref = await self.messenger.post_message(channel, card["text"], card["blocks"])
            posts.append(AskMessage(channel=ref.channel, ts=ref.ts))
        sent = await self._dm_each(
            record.id,
            record.direct,
            card,
            lambda ref, user: AskMessage(channel=ref.channel, ts=ref.ts, person=user),
        )
        return posts + sent

    async def show_outcome(self, record: AskRecord) -> None:
        await self._update_all(record.id, record.messages, cards.closed_message(record))

    async def remind(self, record: AskRecord) -> None:
        await self._remind_each(record.id, record.people, cards.reminder_message(record))

    async def notify(self, record: AskRecord, event: AskEvent) -> None:
        card = cards.requested_notice if event == "requested" else cards.closed_notice
        await self._notice(record.notify_channel, lambda: card(record))

    async def tell_requester(self, record: AskRecord) -> None:
        await self._dm_requester(record.requester, lambda: cards.requester_notice(record))

    async def bot_user(self) -> str | None:
        return await self._bot_user()

    async def refresh_lists(self, record: AskRecord) -> None:
        await self._refresh_homes(record.id, record.team_id, record.people)
