"""Failure alerts (SPEC §14): the owners hear once when a flow has failed `alert_after` runs
in a row (flow-level, default 3, 0: off), and once when it succeeds again.

The streak is one counter per flow (`FailureStreakStore`), changed by a single atomic
update that returns the count after it: the run that makes the count reach `alert_after`
is the only one that alerts, whichever process drove it. Cancelled runs change nothing.

Successes stay off the run's path (issue 20: a read per successful run was a quarter of
its round trips). A success is only noted in memory; a flusher settles the noted
successes in batches, `flush_every` seconds after the first: one read of the streaks of
those flows that have one (usually none), then a compare-and-set per flow that has, which
resets it; the one process whose reset succeeds on a count at or past `alert_after`
announces the recovery. Order is kept: the streak records when its last failure ended,
and a success resets only a streak whose last failure ended no later than it; a failure
in this process first settles its flow's noted success. The flusher drains at `stop()`.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from flows.records import FlowRecord, RunRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Streak:
    """A flow's failures in a row, and when the last of them ended."""

    count: int
    last_failed_at: datetime | None = None


class FailureStreakStore(Protocol):
    """MongoDB adapter: `storage.alerts_repo`."""

    async def failed(self, team_id: str, flow_id: str, at: datetime | None = None) -> int:
        """Add one failure (its run ended `at`); the count after it."""
        ...

    async def streaks(self, flow_ids: Sequence[str]) -> dict[str, Streak]:
        """The streaks of those flows that have one (a count above 0), in one read."""
        ...

    async def reset(self, flow_id: str, streak: Streak) -> bool:
        """Compare-and-set: the count back to 0 if the streak is still `streak`."""
        ...

    async def forget(self, flow_id: str) -> None:
        """The flow was deleted: its streak goes with it."""
        ...


class AlertNotifier(Protocol):
    async def failing(self, flow: FlowRecord, run: RunRecord, failures: int) -> None: ...

    async def recovered(self, flow: FlowRecord, run: RunRecord, failures: int) -> None: ...


class FlowSource(Protocol):
    async def get(self, team_id: str, flow_id: str) -> FlowRecord | None: ...


def _failed_after(streak: Streak, run: RunRecord) -> bool:
    last, success = streak.last_failed_at, run.finished_at
    return last is not None and success is not None and last > success


class FailureAlerts:
    """`Runner.on_finished` listener, and a service (its `stop` settles what is noted)."""

    def __init__(
        self,
        streaks: FailureStreakStore,
        flows: FlowSource,
        notifier: AlertNotifier,
        *,
        flush_every: float = 1.0,
    ) -> None:
        self.streaks = streaks
        self.flows = flows
        self.notifier = notifier
        self.flush_every = flush_every
        self._noted: dict[str, RunRecord] = {}  # flow id → its latest unsettled success
        self._lock = asyncio.Lock()  # a flush, or a failure settling its flow's success
        self._flusher: asyncio.Task[None] | None = None

    async def start(self) -> None:
        pass

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            await asyncio.gather(self._flusher, return_exceptions=True)
            self._flusher = None
        await self.flush()

    async def on_run_finished(self, run: RunRecord) -> None:
        if run.status == "failed":
            await self._failed(run)
        elif run.status == "succeeded":
            self._noted[run.flow_id] = run
            if self._flusher is None or self._flusher.done():
                self._flusher = asyncio.create_task(self._flush_soon())

    async def _failed(self, run: RunRecord) -> None:
        threshold = run.definition.alert_after
        async with self._lock:
            noted = self._noted.pop(run.flow_id, None)
            told = await self._settle({run.flow_id: noted} if noted is not None else {})
            count = await self.streaks.failed(run.team_id, run.flow_id, run.finished_at)
        await self._tell_recoveries(told)
        if threshold and count == threshold:
            await self._tell(run, count, recovered=False)

    async def _flush_soon(self) -> None:
        while self._noted:
            await asyncio.sleep(self.flush_every)
            try:
                await self.flush()
            except Exception:
                log.exception("settling the failure streaks of %d flows failed", len(self._noted))

    async def flush(self) -> None:
        """Settle every noted success: reset the streaks they end, announce recoveries."""
        async with self._lock:
            noted, self._noted = self._noted, {}
            try:
                told = await self._settle(noted)
            except Exception:
                for flow_id, run in noted.items():  # try again with the next flush
                    self._noted.setdefault(flow_id, run)
                raise
        await self._tell_recoveries(told)

    async def _settle(self, noted: dict[str, RunRecord]) -> list[tuple[RunRecord, int]]:
        if not noted:
            return []
        told: list[tuple[RunRecord, int]] = []
        streaks = await self.streaks.streaks(list(noted))
        for flow_id, streak in streaks.items():
            run = noted[flow_id]
            count = await self._reset(run, streak)
            threshold = run.definition.alert_after
            if threshold and count >= threshold:
                told.append((run, count))
        return told

    async def _reset(self, run: RunRecord, streak: Streak | None) -> int:
        """Reset the streak `run` ends; the count it reset (0: none, or a later failure)."""
        while streak is not None and streak.count > 0 and not _failed_after(streak, run):
            if await self.streaks.reset(run.flow_id, streak):
                return streak.count
            streak = (await self.streaks.streaks([run.flow_id])).get(run.flow_id)
        return 0

    async def _tell_recoveries(self, told: list[tuple[RunRecord, int]]) -> None:
        for run, count in told:
            try:
                await self._tell(run, count, recovered=True)
            except Exception:
                log.exception("run %s: telling the owners of the recovery failed", run.id)

    async def on_flow_deleted(self, team_id: str, flow_id: str, deleted_by: str) -> None:
        """`FlowCatalog.on_delete` listener: the streak is deleted with its flow."""
        self._noted.pop(flow_id, None)
        await self.streaks.forget(flow_id)

    async def _tell(self, run: RunRecord, count: int, *, recovered: bool) -> None:
        flow = await self.flows.get(run.team_id, run.flow_id)
        if flow is None:
            return
        if recovered:
            await self.notifier.recovered(flow, run, count)
        else:
            await self.notifier.failing(flow, run, count)
