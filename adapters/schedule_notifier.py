"""`flows.scheduling.ScheduleNotifier` on Slack: owners hear of scheduled runs skipped."""

from __future__ import annotations

import logging
from datetime import datetime

from slack_sdk.errors import SlackApiError

from cards import schedules as schedule_cards
from flows.definition import ScheduleTrigger
from flows.ports import Messenger
from flows.records import FlowRecord
from flows.scheduling import SkippedSlots, direct_owners

log = logging.getLogger(__name__)


class SlackScheduleNotifier:
    """A DM to each direct owner of the flow (`flows.scheduling.direct_owners`)."""

    def __init__(self, messenger: Messenger) -> None:
        self.messenger = messenger

    async def slots_skipped(
        self, flow: FlowRecord, skipped: SkippedSlots, next_run: datetime | None
    ) -> None:
        trigger = flow.definition.trigger
        tz = trigger.timezone if isinstance(trigger, ScheduleTrigger) else "UTC"
        window = None
        if skipped.reason == "too_old" and isinstance(trigger, ScheduleTrigger):
            window = trigger.catchup_window
        card = schedule_cards.skipped_message(
            flow.name,
            skipped.count,
            skipped.capped,
            skipped.first,
            skipped.last,
            tz,
            next_run,
            catchup_window=window,
        )
        for owner in direct_owners(flow):
            try:
                await self.messenger.send_dm(owner, card["text"], card["blocks"])
            except SlackApiError as exc:
                # One owner's closed DM must not keep the others from hearing of it.
                log.warning("could not DM %s about skipped runs: %s", owner, exc)
