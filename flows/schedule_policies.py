"""Schedule policies (SPEC §14): overlap, jitter, the next firing times, backfill.

- Overlap: a slot whose previous run of the flow is still in progress (queued, running or
  waiting) is `skip`ped (recorded in the trigger log), `queue`d (at most one slot waits in
  the schedule state, started when the run in progress ends) or `allow`ed. Exact across
  processes: a slot that runs carries its run key (one run per slot whoever starts it);
  a slot skipped or queued is first claimed on the schedule state with a compare-and-set
  (`ScheduleStateStore.claim_slot`), so one process alone records or queues it; the queued
  slot is taken with a compare-and-set too and its run carries the slot's run key.
- Jitter: each slot is delayed by up to `jitter`, the same in every process (derived from
  the flow id and the slot, not from a random generator), so replicas agree on when.
- `next_firing_times`: APScheduler's triggers in the flow's timezone (daylight-saving
  changes included), the same computation the scheduler and `/flow show` use.
- Backfill: each slot in a range once (the run key of the slot), at most `MAX_BACKFILL`.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from datetime import datetime, timedelta
from typing import Protocol

from flows.definition import ScheduleTrigger
from flows.errors import FlowbotError
from flows.run_model import RunInProgress

MAX_NEXT = 50
DEFAULT_NEXT = 5
MAX_BACKFILL = 100
IN_PROGRESS = frozenset({"queued", "running", "waiting"})


def jitter_of(trigger: ScheduleTrigger, flow_id: str, slot: datetime) -> timedelta:
    """The delay of one slot: in [0, jitter), the same in every process."""
    span = trigger.jitter_delta
    if span <= timedelta(0):
        return timedelta(0)
    digest = hashlib.sha256(f"{flow_id}:{slot.timestamp():.0f}".encode()).digest()
    fraction = int.from_bytes(digest[:8], "big") / 2**64
    return timedelta(seconds=int(span.total_seconds() * fraction))


def next_firing_times(trigger: ScheduleTrigger, after: datetime, count: int) -> list[datetime]:
    """The next `count` firing times after `after`, in the trigger's timezone."""
    out: list[datetime] = []
    current = trigger.next_fire_time(after)
    while current is not None and len(out) < count:
        out.append(current.astimezone(trigger.zone))
        following = trigger.next_fire_time(current)
        if following is not None and following <= current:
            break
        current = following
    return out


def in_progress(
    runs: Sequence[RunInProgress], except_key: str | None = None
) -> RunInProgress | None:
    """A run of the flow still in progress (other than the slot's own), if any."""
    for run in runs:
        if run.status in IN_PROGRESS and run.run_key != except_key:
            return run
    return None


class RunsInProgress(Protocol):
    """`RunStore.in_progress_of`: the runs of these flows in progress, per flow."""

    async def in_progress_of(self, flow_ids: Sequence[str]) -> dict[str, list[RunInProgress]]: ...


# ------------------------------------------------------------------ refusals


class NotScheduled(FlowbotError):
    """`/flow next` or `/flow backfill` of a flow without a schedule."""

    def __init__(self, flow_name: str) -> None:
        super().__init__(f"{flow_name} has no schedule")
        self.flow_name = flow_name


class TooManySlots(FlowbotError):
    def __init__(self, flow_name: str, count: int, limit: int) -> None:
        super().__init__(f"{flow_name}: {count} slots, at most {limit}")
        self.flow_name = flow_name
        self.count = count
        self.limit = limit


class BadRange(FlowbotError):
    typing_mistake = True

    def __init__(self, text: str) -> None:
        super().__init__(f"bad range: {text}")
        self.text = text


def parse_moment(text: str, trigger: ScheduleTrigger) -> datetime:
    """`2024-03-01`, `2024-03-01T09:00` (the flow's timezone) or with an offset."""
    try:
        moment = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError:
        raise BadRange(text) from None
    return moment if moment.tzinfo else moment.replace(tzinfo=trigger.zone)
