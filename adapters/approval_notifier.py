"""Approvals reach Slack: the request with its buttons (DMs or a channel post), its
updates, reminders and notices, rendered with `cards.approvals` (the Slack calls shared
with asks: `adapters.people_messages`)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

from slack_sdk.errors import SlackApiError
from slack_sdk.web.async_client import AsyncWebClient

from adapters.people_messages import HomeRefresher, PeopleMessages
from cards import approvals as cards
from flows.approval_model import ApprovalMessage, ApprovalRecord
from flows.ports import Messenger
from flows.workspace_context import current_team


class SlackApprovalNotifier(PeopleMessages):
    """Implements `flows.approval_model.ApprovalNotifier` with `cards.approvals`.

    One person's Slack failing (a DM refused, a home not published) does not keep the
    others from hearing: those failures are logged per person."""

    noun = "approval"

    def __init__(
        self,
        messenger: Messenger,
        client: AsyncWebClient,
        refresh_home: HomeRefresher | None = None,
    ) -> None:
        super().__init__(messenger, refresh_home)
        self.client = client
        # The bot's user id per workspace (each installation has its own bot user).
        self._bot_users: dict[str | None, str] = {}

    async def send_request(self, record: ApprovalRecord) -> list[ApprovalMessage]:
        card = cards.request_message(record)
        if record.channel:
            ref = await self.messenger.post_message(record.channel, card["text"], card["blocks"])
            return [ApprovalMessage(channel=ref.channel, ts=ref.ts)]
        return await self._dm_each(
            record.id,
            record.approvers,
            card,
            lambda ref, user: ApprovalMessage(channel=ref.channel, ts=ref.ts, approver=user),
        )

    async def show_progress(self, record: ApprovalRecord) -> None:
        await self._update_all(record.id, record.messages, cards.request_message(record))

    async def show_outcome(self, record: ApprovalRecord) -> None:
        if record.cancelled:
            await self._update_all(record.id, record.messages, cards.cancelled_message(record))
            return
        await self._update_all(record.id, record.messages, cards.decided_message(record))

    async def remind(self, record: ApprovalRecord, users: Sequence[str]) -> None:
        await self._remind_each(record.id, users, cards.reminder_message(record))

    async def tell_requester(self, record: ApprovalRecord) -> None:
        await self._dm_requester(record.requester, lambda: cards.requester_notice(record))

    async def notify(self, record: ApprovalRecord, event: Literal["requested", "decided"]) -> None:
        card = cards.requested_notice if event == "requested" else cards.decided_notice
        await self._notice(record.notify_channel, lambda: card(record))

    async def refresh_lists(self, record: ApprovalRecord) -> None:
        await self._refresh_homes(record.id, record.team_id, record.approvers)

    async def bot_user(self) -> str | None:
        team = current_team.get()
        if team not in self._bot_users:
            try:
                response = await self.client.auth_test()
                self._bot_users[team] = str(response.get("user_id") or "")
            except SlackApiError:
                return None
        return self._bot_users[team] or None
