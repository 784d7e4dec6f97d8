"""How a request to people reaches Slack, for approvals (`adapters.approval_notifier`)
and asks (`adapters.ask_notifier`): a DM to each person (at once, one refused DM does not
keep the others from being asked), every posted message updated, reminders, the
requester's DM, the notify channel's notice and the people's App Homes refreshed.

What the messages say is each area's cards (`cards.approvals`, `cards.asks`)."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Protocol, TypeVar

from slack_sdk.errors import SlackApiError

from cards.common import Message
from flows.ports import Messenger
from flows.records import MessageRef

log = logging.getLogger(__name__)

# Re-publishes one person's App Home: (team_id, user_id).
HomeRefresher = Callable[[str, str], Awaitable[None]]

T = TypeVar("T")


class Posted(Protocol):
    """A message the request was posted in (`ApprovalMessage`, `AskMessage`)."""

    @property
    def channel(self) -> str: ...
    @property
    def ts(self) -> str: ...


class PeopleMessages:
    """The Slack side both notifiers share; `noun` words the logs ("approval", "ask")."""

    noun = "request"

    def __init__(self, messenger: Messenger, refresh_home: HomeRefresher | None = None) -> None:
        self.messenger = messenger
        # Set by the wiring once the App Home can be built (bot.app).
        self.refresh_home = refresh_home

    async def _dm_each(
        self,
        record_id: str,
        users: Iterable[str],
        card: Message,
        posted: Callable[[MessageRef, str], T],
    ) -> list[T]:
        """DM `card` to each user at once; `posted(ref, user)` for those that went."""

        async def dm(user: str) -> T | None:
            try:
                ref = await self.messenger.send_dm(user, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("%s %s: DM to %s failed: %s", self.noun, record_id, user, exc)
                return None
            return posted(ref, user)

        sent = await asyncio.gather(*(dm(user) for user in users))
        return [m for m in sent if m is not None]

    async def _update_all(self, record_id: str, messages: Sequence[Posted], card: Message) -> None:
        """Every posted message shows `card` (one failed update does not stop the others)."""

        async def update(item: Posted) -> None:
            try:
                ref = MessageRef(channel=item.channel, ts=item.ts)
                await self.messenger.update_message(ref, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("%s %s: updating %s failed: %s", self.noun, record_id, item.ts, exc)

        await asyncio.gather(*(update(item) for item in messages))

    async def _remind_each(self, record_id: str, users: Iterable[str], card: Message) -> None:
        for user in users:
            try:
                await self.messenger.send_dm(user, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("%s %s: reminder to %s failed: %s", self.noun, record_id, user, exc)

    async def _dm_requester(self, requester: str | None, card: Callable[[], Message]) -> None:
        if requester:
            message = card()
            await self.messenger.send_dm(requester, message["text"], message["blocks"])

    async def _notice(self, notify_channel: str | None, card: Callable[[], Message]) -> None:
        """A notice in the flow's notify channel (none when the flow has none)."""
        if not notify_channel:
            return
        message = card()
        await self.messenger.post_message(notify_channel, message["text"], message["blocks"])

    async def _refresh_homes(self, record_id: str, team_id: str, users: Iterable[str]) -> None:
        if self.refresh_home is None:
            return
        for user in users:
            try:
                await self.refresh_home(team_id, user)
            except SlackApiError as exc:
                log.warning(
                    "%s %s: refreshing the home of %s failed: %s", self.noun, record_id, user, exc
                )
