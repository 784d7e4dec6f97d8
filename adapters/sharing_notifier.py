"""How people hear about sharing, in Slack: `flows.sharing.SharingNotifier` with
`cards.sharing`. A user gets a DM; a channel gets one post, whose **Add to my buttons**
works for each member who clicks it."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from cards import sharing as cards
from flows.ports import Messenger
from flows.records import FlowRecord, MessageRef, Role
from flows.sharing import AccessRequest
from flows.slack_ids import principal_kind

log = logging.getLogger(__name__)


class SlackSharingNotifier:
    def __init__(self, messenger: Messenger) -> None:
        self.messenger = messenger

    async def button_shared(
        self, recipient: str, flow: FlowRecord, actor: str, role: Role, via: str | None
    ) -> None:
        card = cards.shared_with_you(flow, actor, role, via)
        if principal_kind(recipient) == "channel":
            await self.messenger.post_message(recipient, card["text"], card["blocks"])
        else:
            await self.messenger.send_dm(recipient, card["text"], card["blocks"])

    async def link_shared(self, channel: str, flow: FlowRecord, actor: str) -> MessageRef | None:
        card = cards.link_message(flow, actor)
        try:
            return await self.messenger.post_message(channel, card["text"], card["blocks"])
        except SlackApiError:
            # Mostly: the bot is not in that channel (the person is told to invite it).
            log.warning("posting a link to %s in %s failed", flow.id, channel, exc_info=True)
            return None

    async def access_requested(
        self, owner: str, request: AccessRequest, flow: FlowRecord
    ) -> MessageRef | None:
        card = cards.access_request(request, flow)
        return await self.messenger.send_dm(owner, card["text"], card["blocks"])

    async def access_decided(self, request: AccessRequest, flow: FlowRecord) -> None:
        card = cards.access_answer(request, flow)
        await self.messenger.send_dm(request.requester, card["text"], card["blocks"])

    async def request_closed(
        self, ref: MessageRef, request: AccessRequest, flow: FlowRecord
    ) -> None:
        card = cards.access_request_closed(request, flow)
        await self.messenger.update_message(ref, card["text"], card["blocks"])
