"""`flows.alerts.AlertNotifier` on Slack: a DM to each direct owner of the flow."""

from __future__ import annotations

import logging

from slack_sdk.errors import SlackApiError

from cards import schedule_insight as cards
from cards.common import Message
from flows.ports import Messenger
from flows.records import FlowRecord, RunRecord
from flows.scheduling import direct_owners

log = logging.getLogger(__name__)


class SlackAlertNotifier:
    def __init__(self, messenger: Messenger) -> None:
        self.messenger = messenger

    async def failing(self, flow: FlowRecord, run: RunRecord, failures: int) -> None:
        await self._dm(flow, cards.failing_message(flow, run, failures))

    async def recovered(self, flow: FlowRecord, run: RunRecord, failures: int) -> None:
        await self._dm(flow, cards.recovered_message(flow, run, failures))

    async def _dm(self, flow: FlowRecord, card: Message) -> None:
        for owner in direct_owners(flow):
            try:
                await self.messenger.send_dm(owner, card["text"], card["blocks"])
            except SlackApiError as exc:
                log.warning("could not DM %s about flow %s: %s", owner, flow.id, exc)
