"""Scheduled flows: APScheduler wake-ups, one run per (flow, slot) across replicas, misfires.

How it works

- Every enabled scheduled flow has one job in this process's `AsyncIOScheduler`: a one-shot
  `DateTrigger` at the flow's next slot (`ScheduleTrigger.next_fire_time`, cron or interval,
  in the flow's timezone; intervals may be as short as one second). The job is only a
  wake-up: `tick` checks the flow armed is still the enabled version (else reads it again),
  reads its schedule state (and its newest runs if its overlap policy needs them) at once,
  starts what is due and arms the next wake-up (`flows.schedule_wakes`: the wake-ups of a
  moment read together). Jobs live in memory; nothing of APScheduler is shared.
- Exactly once: the run of a slot carries the run key `sched:<flow id>:<slot ISO time>` and
  the runs collection's unique index turns every other process's attempt into a
  `DuplicateRun`. Two replicas compute the same slots because slots come from the
  definition alone (intervals are anchored at the epoch, not at start-up).
- Schedule state (`ScheduleStateStore`, one document per flow) keeps `last_slot`, the newest
  slot handled (run, skipped, or the moment the schedule started). At every tick, the slots
  in (last_slot, now] are looked at. Of those less than `grace` old only the newest is due:
  older ones were superseded by it while this process was late (a busy loop, a slow
  database; another replica has usually run them), and are coalesced into it, as
  APScheduler's `coalesce` does — a short interval never makes a burst of late runs. Slots
  more than `grace` old were missed (the bot was down) and follow the flow's misfire
  policy: `skip` records them on the state and tells the owners (a DM to the creator and to
  each co-owner named directly); `run_once` starts one run, keyed by the newest missed
  slot. A skip is claimed with a conditional update, so two replicas never record or
  announce it twice.
- A new, re-enabled or edited flow (`version` differs from the state's) starts from "now":
  the time it was off or had another schedule is not a misfire.
- Overlap, jitter, catch-up window and backfill: see `flows.schedule_policies`. Under
  `misfire: run_once` the newest missed slot runs only if it is younger than the
  trigger's `catchup_window`; older ones are recorded as missed like `skip`. Every
  decision (started, skipped by overlap, queued, missed) goes to the trigger log.
- Changes: `on_flow_changed` follows `FlowCatalog.on_change` in this process; other
  processes see a change at their next wake-up of that flow (which re-reads it) or at the
  periodic resync (`resync_interval`), which also picks up flows created elsewhere.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Any, Literal, Protocol

from apscheduler.schedulers.asyncio import AsyncIOScheduler
from apscheduler.triggers.date import DateTrigger
from apscheduler.triggers.interval import IntervalTrigger
from pydantic import BaseModel, Field

from flows.collector import collector_resting
from flows.definition import ScheduleTrigger
from flows.ports import Clock
from flows.records import FlowRecord, RunRecord, RunTrigger
from flows.runner import DuplicateRun, RunRefused
from flows.schedule_policies import (
    MAX_BACKFILL,
    RunsInProgress,
    TooManySlots,
    in_progress,
    jitter_of,
)
from flows.schedule_wakes import InProgress, WakeReads
from flows.slack_ids import principal_kind
from flows.trigger_log import Reason, TriggerLog, when_allows
from flows.workspace_context import acting_for

log = logging.getLogger(__name__)

# Slots counted one by one at most; past this a downtime is reported as "more than".
SLOT_COUNT_LIMIT = 1000
# How many skip records a schedule state keeps (newest last).
SKIP_HISTORY = 20
_RESYNC_JOB = "flowbot:resync"


# Flows ticked at once at start and resync: enough to overlap round trips, few enough to
# leave the database and the event loop to the runs being fired.
_PARALLEL_TICKS = 32


def slot_key(slot: datetime) -> str:
    """A slot as it appears in run keys: UTC, ISO 8601, whole seconds."""
    return slot.astimezone(timezone.utc).replace(microsecond=0).isoformat()


def schedule_run_key(flow_id: str, slot: datetime) -> str:
    return f"sched:{flow_id}:{slot_key(slot)}"


# ------------------------------------------------------------------ state


class SkippedSlots(BaseModel):
    """Slots of a flow missed while no bot ran and not run: `reason` "skip" (the `skip`
    misfire policy) or "too_old" (`run_once`, but the newest was older than the
    trigger's `catchup_window`)."""

    count: int
    reason: Literal["skip", "too_old"] = "skip"
    capped: bool = False  # more than `count` slots were missed
    first: datetime
    last: datetime
    recorded_at: datetime


class ScheduleState(BaseModel):
    flow_id: str
    team_id: str
    version: int
    active: bool = True
    last_slot: datetime
    skipped_total: int = 0
    skipped: list[SkippedSlots] = Field(default_factory=list)
    queued_slot: datetime | None = None  # overlap `queue`: the slot waiting for its turn


class ScheduleStateStore(Protocol):
    """Per-flow schedule state (MongoDB adapter: `storage.schedules_repo`)."""

    async def get(self, flow_id: str) -> ScheduleState | None: ...

    async def get_many(self, flow_ids: Sequence[str]) -> dict[str, ScheduleState]:
        """The states of these flows (flows without one are left out)."""
        ...

    async def activate(
        self, team_id: str, flow_id: str, version: int, at: datetime
    ) -> ScheduleState:
        """Start (or restart) the schedule at `at` unless it is already active for this
        version (then the stored state is returned unchanged)."""
        ...

    async def deactivate(self, flow_id: str) -> None: ...

    async def delete(self, flow_id: str) -> None: ...

    async def advance(self, flow_id: str, slot: datetime) -> None:
        """last_slot = max(last_slot, slot)."""
        ...

    async def record_skipped(self, flow_id: str, skipped: SkippedSlots) -> bool:
        """If last_slot is still before skipped.last: record the skip and move last_slot to
        skipped.last. True for the one caller that did it."""
        ...

    async def claim_slot(self, flow_id: str, slot: datetime) -> bool:
        """If last_slot is still before `slot`: move it there. True for the one caller
        that did it (who alone decides what the slot does)."""
        ...

    async def queue_slot(self, flow_id: str, slot: datetime) -> bool:
        """Set queued_slot if no slot is queued. True if this call queued it."""
        ...

    async def take_queued(self, flow_id: str) -> datetime | None:
        """Unset queued_slot and return it (None: nothing queued, or taken by another)."""
        ...


# ------------------------------------------------------------------ ports


class ScheduledFlowSource(Protocol):
    """The flows the schedule follows (the flow store)."""

    async def get(self, team_id: str, flow_id: str) -> FlowRecord | None: ...

    async def list_enabled(
        self, trigger_type: str, team_id: str | None = None
    ) -> list[FlowRecord]: ...

    async def enabled_versions(self, trigger_type: str) -> dict[str, tuple[str, int]]:
        """flow id -> (team id, version) of the enabled flows of this trigger type."""
        ...

    async def get_many(self, flow_ids: Sequence[str]) -> list[FlowRecord]: ...

    async def enabled_versions_of(self, flow_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """`enabled_versions` of these flows only."""
        ...


class RunStarter(Protocol):
    """`flows.runner.Runner.start_run`: DuplicateRun for a run key seen before."""

    async def start_run(
        self,
        flow: Any,
        trigger: RunTrigger,
        inputs: Mapping[str, Any] | None = None,
        *,
        reply_to: str | None = None,
        run_key: str | None = None,
        depth: int = 0,
    ) -> RunRecord: ...


def missed_detail(trigger: ScheduleTrigger, skipped: SkippedSlots) -> str:
    """The trigger log's words for missed slots, with the reason they were not run."""
    more = "more than " if skipped.capped else ""
    why = (
        f"older than the catch-up window ({trigger.catchup_window})"
        if skipped.reason == "too_old"
        else "misfire policy skip"
    )
    span = f"{slot_key(skipped.first)} to {slot_key(skipped.last)}"
    return f"{more}{skipped.count} slot(s), {span}: {why}"


class ScheduleNotifier(Protocol):
    """Tells the owners of a flow that scheduled runs were skipped."""

    async def slots_skipped(
        self, flow: FlowRecord, skipped: SkippedSlots, next_run: datetime | None
    ) -> None: ...


def direct_owners(flow: FlowRecord) -> list[str]:
    """Whom a skip is told to: the creator and the co-owners named directly (people, not
    the members of a group or channel that owns it)."""
    owners = [flow.creator]
    for principal in flow.principals("owner"):
        if principal_kind(principal) == "user" and principal not in owners:
            owners.append(principal)
    return owners


# ------------------------------------------------------------------ slot arithmetic


@dataclass(frozen=True)
class SlotWindow:
    """The slots in (after, until]: how many, the first, the newest and the one before."""

    count: int = 0
    capped: bool = False
    first: datetime | None = None
    newest: datetime | None = None
    before_newest: datetime | None = None


def _slots(
    trigger: ScheduleTrigger, after: datetime, until: datetime, limit: int
) -> list[datetime]:
    out: list[datetime] = []
    current = trigger.next_fire_time(after)
    while current is not None and current <= until and len(out) < limit:
        out.append(current)
        following = trigger.next_fire_time(current)
        if following is not None and following <= current:  # never loop on a broken trigger
            break
        current = following
    return out


def slots_between(
    trigger: ScheduleTrigger, after: datetime, until: datetime, limit: int = SLOT_COUNT_LIMIT
) -> SlotWindow:
    """The slots of a schedule strictly after `after` and up to `until` (inclusive)."""
    if until <= after:
        return SlotWindow()
    head = _slots(trigger, after, until, limit + 1)
    if len(head) <= limit:
        if not head:
            return SlotWindow()
        return SlotWindow(len(head), False, head[0], head[-1], head[-2] if len(head) > 1 else None)
    # A long downtime: count no further, find the newest two slots by looking back.
    floor = head[limit - 1]
    lookback = min(timedelta(hours=1), 4 * (trigger.every_delta or timedelta(hours=1)))
    while True:
        start = max(until - lookback, floor)
        tail = _slots(trigger, start, until, 100_000)
        if len(tail) >= 2 or start == floor:
            break
        lookback *= 2
    if not tail:
        return SlotWindow(limit, True, head[0], floor, head[limit - 2])
    before = tail[-2] if len(tail) > 1 else floor
    return SlotWindow(limit, True, head[0], tail[-1], before)


def default_inputs(flow: FlowRecord) -> dict[str, Any]:
    """Scheduled and automated runs ask nobody: inputs take their defaults."""
    return {i.id: i.default for i in flow.definition.inputs if i.default is not None}


# ------------------------------------------------------------------ the service


class ScheduleService:
    """The scheduler `Service` (start/stop) of scheduled flows. See the module docstring."""

    def __init__(
        self,
        flows: ScheduledFlowSource,
        runner: RunStarter,
        states: ScheduleStateStore,
        clock: Clock,
        notifier: ScheduleNotifier | None = None,
        *,
        grace: timedelta = timedelta(seconds=60),
        resync_interval: float = 60.0,
        history: RunsInProgress | None = None,
        trigger_log: TriggerLog | None = None,
    ) -> None:
        # Overlap policies read the flow's runs in progress; without `history` all slots run.
        self.history = history
        self.trigger_log = trigger_log
        self.flows = flows
        self.runner = runner
        self.states = states
        self.clock = clock
        self.notifier = notifier
        self.grace = grace
        self.resync_interval = resync_interval
        self.scheduler = AsyncIOScheduler(
            timezone=timezone.utc,
            job_defaults={"misfire_grace_time": None, "coalesce": True, "max_instances": 1},
        )
        # flow id → (team id, next slot) of the wake-ups armed in this process.
        self._armed: dict[str, tuple[str, datetime]] = {}
        # flow id → the flow its wake-up was armed with (resync skips unchanged versions).
        self._armed_flow: dict[str, FlowRecord] = {}
        self._locks: dict[str, asyncio.Lock] = {}
        self._wake_reads = WakeReads(flows, states, history)
        self._started = False

    # --- Service

    async def start(self) -> None:
        """Rebuild the wake-ups from the database and apply misfire policies (downtime)."""
        aps_log = logging.getLogger("apscheduler")
        if aps_log.level == logging.NOTSET:
            # One "Added job" line per flow and slot otherwise; its warnings still show.
            aps_log.setLevel(logging.WARNING)
        # Paused while every wake-up is armed: APScheduler wakes its loop up once, at
        # `resume`, rather than once per job added (a self-pipe write each).
        self.scheduler.start(paused=True)
        self._started = True
        with collector_resting():
            await self._tick_all(await self.flows.list_enabled("schedule"))
        self.scheduler.resume()
        self.scheduler.add_job(
            self.resync,
            IntervalTrigger(seconds=self.resync_interval, timezone=timezone.utc),
            id=_RESYNC_JOB,
            replace_existing=True,
        )

    async def _tick_all(self, flows: list[FlowRecord]) -> None:
        """Tick many flows, a bounded number at a time: their database round trips overlap,
        and their states are read in bulk, so 10,000 schedules load in about a second."""
        gate = asyncio.Semaphore(_PARALLEL_TICKS)
        states = await self.states.get_many([flow.id for flow in flows])

        async def one(flow: FlowRecord) -> None:
            async with gate:
                await self._safe_tick(flow.team_id, flow.id, flow, states)

        await asyncio.gather(*(one(flow) for flow in flows))

    async def stop(self) -> None:
        if self._started:
            self._started = False
            with contextlib.suppress(Exception):
                self.scheduler.shutdown(wait=False)
        self._armed.clear()
        self._armed_flow.clear()

    # --- following changes

    async def on_flow_changed(self, team_id: str, flow_id: str) -> None:
        """`FlowCatalog.on_change` listener: created, edited, enabled, disabled, deleted."""
        await self.tick(team_id, flow_id)

    async def resync(self) -> None:
        """Follow changes made through other processes (new, edited, disabled, deleted
        flows) and re-arm every wake-up; ticks are idempotent, so this is always safe."""
        # Versions only (nothing parsed); an armed flow of the same version whose next slot
        # is still ahead has nothing to catch up: only new, edited and overdue flows are
        # read and ticked.
        try:
            versions = await self.flows.enabled_versions("schedule")
            now = self.clock.now()
            changed = [
                flow_id
                for flow_id, (_, version) in versions.items()
                if flow_id not in self._armed_flow
                or self._armed_flow[flow_id].version != version
                or flow_id not in self._armed
                or self._armed[flow_id][1] <= now
            ]
            flows = await self.flows.get_many(changed)
        except Exception:
            log.exception("schedule resync failed")
            return
        seen = set(versions)
        await self._tick_all(flows)
        for flow_id, (team_id, _) in list(self._armed.items()):
            if flow_id not in seen:
                await self._safe_tick(team_id, flow_id)

    def next_wakeup(self, flow_id: str) -> datetime | None:
        """The next slot this process will wake up for (None: not scheduled here)."""
        armed = self._armed.get(flow_id)
        return armed[1] if armed else None

    # --- the tick

    async def _safe_tick(
        self,
        team_id: str,
        flow_id: str,
        loaded: FlowRecord | None = None,
        states: Mapping[str, ScheduleState] | None = None,
        *,
        armed: bool = False,
    ) -> None:
        try:
            with acting_for(team_id):  # its notices use that workspace's token
                await self.tick(team_id, flow_id, loaded, states, armed=armed)
        except Exception:
            log.exception("schedule tick of flow %s failed", flow_id)

    async def tick(
        self,
        team_id: str,
        flow_id: str,
        loaded: FlowRecord | None = None,
        states: Mapping[str, ScheduleState] | None = None,
        *,
        armed: bool = False,
    ) -> None:
        """Bring one flow's schedule up to date: run what is due, handle missed slots,
        arm the next wake-up (or disarm when the flow is gone, disabled or not scheduled).
        `loaded`: the flow just read by a bulk query (saves reading it again); `states`:
        the states read in bulk with it (a flow missing there has none). `armed`: a
        wake-up (`_armed_reads`)."""
        lock = self._locks.setdefault(flow_id, asyncio.Lock())
        async with lock:
            runs: InProgress = None
            reads = await self._armed_reads(team_id, flow_id) if armed else None
            if reads is not None:
                loaded, state_read, runs = reads
                states = {flow_id: state_read} if state_read is not None else {}
            flow = loaded if loaded is not None else await self.flows.get(team_id, flow_id)
            trigger = _schedule_of(flow)
            if flow is None or trigger is None or not flow.enabled:
                self._disarm(flow_id)
                if flow is None:
                    await self.states.delete(flow_id)
                else:
                    await self.states.deactivate(flow_id)
                self._locks.pop(flow_id, None)
                return
            now = self.clock.now()
            state = states.get(flow_id) if states is not None else await self.states.get(flow_id)
            if state is None or not state.active or state.version != flow.version:
                await self.states.activate(team_id, flow_id, flow.version, now)
            else:
                await self._catch_up(flow, trigger, state, now, runs)
            self._arm(flow, trigger, now)

    async def _armed_reads(
        self, team_id: str, flow_id: str
    ) -> tuple[FlowRecord, ScheduleState | None, InProgress] | None:
        """(flow armed, state, runs in progress if its overlap policy needs them), read with
        those of the wake-ups due together (`flows.schedule_wakes`);
        None if the flow was edited, disabled or deleted since it was armed (the caller
        reads it again): a flow never fires a version that is no longer the enabled one."""
        flow = self._armed_flow.get(flow_id)
        trigger = _schedule_of(flow)
        if flow is None or trigger is None or flow.team_id != team_id:
            return None
        enabled, state, runs = await self._wake_reads.read(flow_id, trigger.overlap != "allow")
        if enabled != (team_id, flow.version):
            return None
        return flow, state, runs

    async def _catch_up(
        self,
        flow: FlowRecord,
        trigger: ScheduleTrigger,
        state: ScheduleState,
        now: datetime,
        runs: InProgress = None,
    ) -> None:
        """`runs`: the flow's runs in progress if read with the state; first slot only."""
        cutoff = now - self.grace - trigger.jitter_delta
        # Missed: more than `grace` (and the jitter) old: downtime. Recent: the newest whose
        # jittered time has come is due, the others were superseded by it.
        missed = slots_between(trigger, state.last_slot, cutoff)
        due = self._due(
            flow, trigger, slots_between(trigger, max(state.last_slot, cutoff), now), now
        )
        if state.queued_slot is not None:
            await self._start_queued(flow, trigger)
            runs = None  # it may have started one
        if missed.newest is not None and missed.first is not None:
            if trigger.misfire == "run_once" and now - missed.newest <= trigger.catchup_delta:
                data = {"missed": missed.count, "missed_more": missed.capped, "catch_up": True}
                await self._slot(flow, trigger, missed.newest, data, runs)
                runs = None
            else:
                skipped = SkippedSlots(
                    count=missed.count,
                    reason="too_old" if trigger.misfire == "run_once" else "skip",
                    capped=missed.capped,
                    first=missed.first,
                    last=missed.newest,
                    recorded_at=now,
                )
                if await self.states.record_skipped(flow.id, skipped):
                    log.info("flow %s: %d scheduled run(s) skipped", flow.id, missed.count)
                    await self._log(flow, "missed", detail=missed_detail(trigger, skipped))
                    if self.notifier is not None:
                        try:
                            await self.notifier.slots_skipped(
                                flow, skipped, trigger.next_fire_time(now)
                            )
                        except Exception:
                            log.exception("telling the owners of %s about a skip failed", flow.id)
        if due is not None:
            await self._slot(flow, trigger, due, {}, runs)

    def _due(
        self, flow: FlowRecord, trigger: ScheduleTrigger, window: SlotWindow, now: datetime
    ) -> datetime | None:
        """The newest recent slot whose jittered time has come."""
        for slot in (window.newest, window.before_newest):
            if slot is not None and slot + jitter_of(trigger, flow.id, slot) <= now:
                return slot
        return None

    async def _slot(
        self,
        flow: FlowRecord,
        trigger: ScheduleTrigger,
        slot: datetime,
        extra: dict[str, Any],
        runs: InProgress = None,
    ) -> None:
        """One slot, by its overlap policy (`flows.schedule_policies`); `runs`: if just read."""
        busy = None
        if trigger.overlap != "allow" and self.history is not None:
            key = schedule_run_key(flow.id, slot)
            if runs is None:
                runs = (await self.history.in_progress_of([flow.id])).get(flow.id, [])
            busy = in_progress(runs, key)
        if busy is None:
            # Started, then advanced: a crash in between repeats nothing (the run key).
            await self._start(flow, trigger, slot, extra)
            await self.states.advance(flow.id, slot)
            return
        if not await self.states.claim_slot(flow.id, slot):
            return  # another process (or an earlier tick) decided this slot
        if trigger.overlap == "queue" and await self.states.queue_slot(flow.id, slot):
            await self._log(flow, "queued", detail=f"{slot_key(slot)} after run {busy.id}")
            return
        await self._log(flow, "overlap_skipped", detail=f"{slot_key(slot)}: run {busy.id}")

    async def _start_queued(self, flow: FlowRecord, trigger: ScheduleTrigger) -> None:
        """The queued slot, if nothing of the flow is in progress any more."""
        if self.history is not None and (await self.history.in_progress_of([flow.id])):
            return
        slot = await self.states.take_queued(flow.id)
        if slot is not None:
            await self._start(flow, trigger, slot, {"queued": True})

    async def on_run_finished(self, run: RunRecord) -> None:
        """`Runner.on_finished` listener: a queued slot of the flow gets its turn."""
        if run.trigger.type != "schedule":
            return
        flow = await self.flows.get(run.team_id, run.flow_id)
        trigger = _schedule_of(flow)
        if flow is None or trigger is None or not flow.enabled or trigger.overlap != "queue":
            return
        try:
            await self._start_queued(flow, trigger)
        except Exception:
            log.exception("starting the queued slot of %s failed", flow.id)

    async def backfill(self, flow: FlowRecord, start: datetime, end: datetime) -> tuple[int, int]:
        """Run each slot in [start, end] once (slots that ran already are not run again):
        (started, already run). TooManySlots past `MAX_BACKFILL`."""
        trigger = _schedule_of(flow)
        assert trigger is not None
        window = _slots(trigger, start - timedelta(microseconds=1), end, MAX_BACKFILL + 1)
        if len(window) > MAX_BACKFILL:
            raise TooManySlots(flow.name, len(window), MAX_BACKFILL)
        started = 0
        for slot in window:
            if await self._start(flow, trigger, slot, {"backfill": True}) is not None:
                started += 1
        return started, len(window) - started

    async def _log(
        self, flow: FlowRecord, reason: Reason, *, run_id: str | None = None, detail: str = ""
    ) -> None:
        if self.trigger_log is not None:
            await self.trigger_log.record(
                flow.team_id, flow.id, "schedule", reason, run_id=run_id, detail=detail
            )

    async def _start(
        self, flow: FlowRecord, trigger: ScheduleTrigger, slot: datetime, extra: dict[str, Any]
    ) -> RunRecord | None:
        data = {
            "slot": slot_key(slot),
            "scheduled_for": slot.astimezone(trigger.zone).isoformat(),
            "timezone": trigger.timezone,
            **extra,
        }
        run_trigger = RunTrigger(type="schedule", data=data)
        try:
            if not when_allows(trigger.when, "schedule", None, data):
                await self._log(flow, "filtered", detail=slot_key(slot))
                return None
        except Exception as exc:
            await self._log(flow, "condition_error", detail=f"{slot_key(slot)}: {exc}")
            return None
        try:
            run = await self.runner.start_run(
                flow, run_trigger, default_inputs(flow), run_key=schedule_run_key(flow.id, slot)
            )
        except DuplicateRun:
            # Another process (or an earlier tick) ran this slot: the run key is unique.
            log.debug("flow %s: slot %s was run already", flow.id, slot_key(slot))
            return None
        except RunRefused as exc:
            log.info("scheduled run of %s refused: %s", flow.id, exc)
            await self._log(flow, "disabled", detail=slot_key(slot))
            return None
        log.info("flow %s: scheduled run %s for %s", flow.id, run.id, slot_key(slot))
        await self._log(flow, "started", run_id=run.id, detail=slot_key(slot))
        return run

    # --- wake-ups

    def _arm(self, flow: FlowRecord, trigger: ScheduleTrigger, now: datetime) -> None:
        slot = trigger.next_fire_time(now - trigger.jitter_delta)
        # With jitter, a slot already past may still be waiting for its jittered time.
        while slot is not None and slot + jitter_of(trigger, flow.id, slot) <= now:
            slot = trigger.next_fire_time(slot)
        if slot is None:
            self._disarm(flow.id)
            return
        self._armed[flow.id] = (flow.team_id, slot)
        self._armed_flow[flow.id] = flow
        if not self._started:
            return
        self.scheduler.add_job(
            self._wake,
            DateTrigger(
                run_date=self._wake_time(slot + jitter_of(trigger, flow.id, slot)),
                timezone=timezone.utc,
            ),
            args=[flow.team_id, flow.id],
            id=f"flow:{flow.id}",
            replace_existing=True,
            # The wake-up being run arms this one: with a slot already due it may come
            # before APScheduler has counted the previous instance as finished (a
            # "maximum number of running instances" refusal would drop the wake-up).
            # Ticks of one flow are serialised by its lock anyway.
            max_instances=3,
        )

    def _disarm(self, flow_id: str) -> None:
        self._armed.pop(flow_id, None)
        self._armed_flow.pop(flow_id, None)
        if self._started:
            with contextlib.suppress(Exception):
                self.scheduler.remove_job(f"flow:{flow_id}")

    def _wake_time(self, slot: datetime) -> datetime:
        """When, by the wall clock APScheduler uses, to wake up for `slot`."""
        real_now = datetime.now(timezone.utc)
        if slot > real_now:
            return slot
        if slot <= self.clock.now():
            return real_now  # the tick outlasted the interval: the slot is due now
        # A clock behind the wall clock never makes a busy loop.
        return real_now + timedelta(seconds=1)

    async def _wake(self, team_id: str, flow_id: str) -> None:
        await self._safe_tick(team_id, flow_id, armed=True)


def _schedule_of(flow: FlowRecord | None) -> ScheduleTrigger | None:
    if flow is None:
        return None
    trigger = flow.definition.trigger
    return trigger if isinstance(trigger, ScheduleTrigger) else None
