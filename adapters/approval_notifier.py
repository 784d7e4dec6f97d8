"""Approvals reach Slack: the request with its buttons (DMs or a channel post), its
updates, reminders and notices, rendered with `cards.approvals`."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from cards import approvals as cards
from cards.common import Message
from flows.approval_model import ApprovalMessage, ApprovalRecord
from flows.ports import Messenger
from flows.records import MessageRef
from flows.workspace_context import current_team

log = logging.getLogger(__name__)

# Re-publishes one person's App Home: (team_id, user_id).
HomeRefresher = Callable[[str, str], Awaitable[None]]


class SlackApprovalNotifier:
    """Implements `flows.approval_model.ApprovalNotifier` with `cards.approvals`.

    One person's Slack failing (a DM refused, a home not published) does not keep the
    others from hearing: those failures are logged per person."""

    def __init__(
        self,
        messenger: Messenger,
        client: AsyncWebClient,
        refresh_home: HomeRefresher | None = None,
    ) -> None:
        self.messenger = messenger
        self.client = client
        # The bot's user id per workspace (each installation has its own bot user).
        self._bot_users: dict[str | None, str] = {}
        # Set by the wiring once the App Home can be built (bot.app).
        self.refresh_home = refresh_home

    async def send_request(self, record: ApprovalRecord) -> list[ApprovalMessage]:
        card = cards.request_message(record)
        if record.channel:
            ref = await self.messenger.post_message(record.channel, card["text"], card["blocks"])
            return [ApprovalMessage(channel=ref.channel, ts=ref.ts)]

        async def dm(user: str) -> ApprovalMessage | None:
            try:
                ref = await self.messenger.send_dm(user, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("approval %s: DM to %s failed: %s", record.id, user, exc)
                return None
            return ApprovalMessage(channel=ref.channel, ts=ref.ts, approver=user)

        sent = await asyncio.gather(*(dm(user) for user in record.approvers))
        return [m for m in sent if m is not None]

    async def _update_all(self, record: ApprovalRecord, card: Message) -> None:
        async def update(item: ApprovalMessage) -> None:
            try:
                ref = MessageRef(channel=item.channel, ts=item.ts)
                await self.messenger.update_message(ref, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("approval %s: updating %s failed: %s", record.id, item.ts, exc)

        await asyncio.gather(*(update(item) for item in record.messages))

    async def show_progress(self, record: ApprovalRecord) -> None:
        await self._update_all(record, cards.request_message(record))

    async def show_outcome(self, record: ApprovalRecord) -> None:
        if record.cancelled:
            await self._update_all(record, cards.cancelled_message(record))
            return
        await self._update_all(record, cards.decided_message(record))

    async def remind(self, record: ApprovalRecord, users: Sequence[str]) -> None:
        card = cards.reminder_message(record)
        for user in users:
            try:
                await self.messenger.send_dm(user, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("approval %s: reminder to %s failed: %s", record.id, user, exc)

    async def tell_requester(self, record: ApprovalRecord) -> None:
        if record.requester:
            card = cards.requester_notice(record)
            await self.messenger.send_dm(record.requester, card["text"], card["blocks"])

    async def notify(self, record: ApprovalRecord, event: Literal["requested", "decided"]) -> None:
        if not record.notify_channel:
            return
        card = (
            cards.requested_notice(record) if event == "requested" else cards.decided_notice(record)
        )
        await self.messenger.post_message(record.notify_channel, card["text"], card["blocks"])

    async def refresh_lists(self, record: ApprovalRecord) -> None:
        if self.refresh_home is None:
            return
        for user in record.approvers:
            try:
                await self.refresh_home(record.team_id, user)
            except SlackApiError as exc:
                log.warning(
                    "approval %s: refreshing the home of %s failed: %s", record.id, user, exc
                )

    async def bot_user(self) -> str | None:
        team = current_team.get()
        if team not in self._bot_users:
            try:
                response = await self.client.auth_test()
                self._bot_users[team] = str(response.get("user_id") or "")
            except SlackApiError:
                return None
        return self._bot_users[team] or None
