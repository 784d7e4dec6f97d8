"""Use cases of SPEC §14 for owners: `/flow next`, `/flow why`, `/flow backfill`.

Each takes the team and the person, finds the flow, and decides through
`flows.permissions` (owners only); refusals are `FlowbotError`s with data.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta

from flows.catalog import FlowCatalog
from flows.definition import ScheduleTrigger
from flows.errors import NotAllowed
from flows.permissions import may_backfill, may_read_trigger_log, resolve_access
from flows.records import FlowRecord
from flows.schedule_policies import (
    DEFAULT_NEXT,
    MAX_NEXT,
    BadRange,
    NotScheduled,
    next_firing_times,
    parse_moment,
)
from flows.scheduling import ScheduleService
from flows.trigger_log import MAX_WHY, TriggerDecision, TriggerLog


@dataclass(frozen=True)
class NextRuns:
    flow: FlowRecord
    trigger: ScheduleTrigger
    times: list[datetime]


# Event triggers whose unmatched events are counted (`TriggerLog.count_unmatched`).
EVENT_TRIGGERS = ("message", "reaction", "member_joined")
UNMATCHED_SPAN = timedelta(hours=1)


@dataclass(frozen=True)
class WhyAnswer:
    flow: FlowRecord
    decisions: list[TriggerDecision]
    # For an event trigger: the workspace's events of its type that reached no flow's
    # trigger in the last `UNMATCHED_SPAN` (None for other triggers).
    unmatched: int | None = None


@dataclass(frozen=True)
class BackfillResult:
    flow: FlowRecord
    trigger: ScheduleTrigger
    start: datetime
    end: datetime
    started: int
    already: int


def _schedule(flow: FlowRecord) -> ScheduleTrigger:
    trigger = flow.definition.trigger
    if not isinstance(trigger, ScheduleTrigger):
        raise NotScheduled(flow.name)
    return trigger


class ScheduleInsight:
    def __init__(
        self, catalog: FlowCatalog, schedules: ScheduleService, trigger_log: TriggerLog
    ) -> None:
        self.catalog = catalog
        self.schedules = schedules
        self.trigger_log = trigger_log

    async def _owned(self, team_id: str, user_id: str, ref: str, action: str) -> FlowRecord:
        flow = await self.catalog.find(team_id, ref)
        access = await resolve_access(flow, user_id, self.catalog.directory)
        ok = (
            may_backfill(flow, access)
            if action == "backfill"
            else may_read_trigger_log(flow, access)
        )
        if not ok:
            raise NotAllowed(action, flow.name, user_id)
        return flow

    async def next_runs(self, team_id: str, user_id: str, ref: str, count: int) -> NextRuns:
        """The next `count` (1…50) firing times, in the flow's timezone."""
        flow = await self._owned(team_id, user_id, ref, "see the schedule of")
        trigger = _schedule(flow)
        count = max(1, min(count or DEFAULT_NEXT, MAX_NEXT))
        times = next_firing_times(trigger, self.catalog.clock.now(), count)
        return NextRuns(flow, trigger, times)

    async def why(self, team_id: str, user_id: str, ref: str, count: int) -> WhyAnswer:
        """The last `count` (1…50) trigger decisions about the flow, newest first."""
        flow = await self._owned(team_id, user_id, ref, "see the trigger log of")
        count = max(1, min(count or 10, MAX_WHY))
        decisions = await self.trigger_log.latest(flow.id, count)
        kind = flow.definition.trigger.type
        if kind not in EVENT_TRIGGERS:
            return WhyAnswer(flow, decisions)
        since = self.catalog.clock.now() - UNMATCHED_SPAN
        counts = await self.trigger_log.unmatched_since(team_id, since)
        return WhyAnswer(flow, decisions, counts.get(kind, 0))

    async def backfill(
        self, team_id: str, user_id: str, ref: str, start_text: str, end_text: str
    ) -> BackfillResult:
        """Run each slot in [start, end] once (at most 100 slots; none in the future)."""
        flow = await self._owned(team_id, user_id, ref, "backfill")
        trigger = _schedule(flow)
        start, end = parse_moment(start_text, trigger), parse_moment(end_text, trigger)
        if len(end_text.strip()) == 10:  # a date alone: the whole day
            end = end.replace(hour=23, minute=59, second=59)
        now = self.catalog.clock.now()
        if end < start or start > now:
            raise BadRange(f"{start_text} {end_text}")
        end = min(end, now)
        started, already = await self.schedules.backfill(flow, start, end)
        return BackfillResult(flow, trigger, start, end, started, already)
