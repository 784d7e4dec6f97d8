"""What a schedule's wake-ups read, in one query per collection for those due together.

Many flows may share a slot (1,000 flows a minute is about 20 on each second; a daily cron
at 09:00 may be thousands). Each wake-up needs the version of its flow (is the flow armed
still the enabled version?), its schedule state and, unless its overlap policy is `allow`,
its runs in progress. Read one by one, that is three round trips per flow, queued behind
each other at the database, and the runs started first of a busy second (their Slack
posts) take the event loop while the later ones still wait for their reads. `WakeReads`
gathers the wake-ups that come in the same turn of the event loop (APScheduler submits
every job due at a moment in one pass) and answers them with one `$in` read of the flow
versions, one of the states and one of the runs in progress (`RunStore.in_progress_of`),
so every wake-up of the moment reaches its run's start at about the same time.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

from flows.run_model import RunInProgress

if TYPE_CHECKING:
    from flows.scheduling import ScheduleState

# (team id, version) of an enabled flow; None: deleted or disabled.
Armed = tuple[str, int] | None
# The runs of a flow in progress; None: not read.
InProgress = list[RunInProgress] | None
Read = tuple[Armed, "ScheduleState | None", InProgress]


class VersionSource(Protocol):
    async def enabled_versions_of(self, flow_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """flow id -> (team id, version) of the enabled flows among these."""
        ...


class StateSource(Protocol):
    async def get_many(self, flow_ids: Sequence[str]) -> dict[str, ScheduleState]: ...


class RunSource(Protocol):
    async def in_progress_of(self, flow_ids: Sequence[str]) -> dict[str, list[RunInProgress]]: ...


class WakeReads:
    """`read(flow_id, runs)`: (team id and version if enabled, schedule state, runs in
    progress if `runs` and a run source is given), read together with those of the other
    wake-ups of the same moment."""

    def __init__(
        self, flows: VersionSource, states: StateSource, runs: RunSource | None = None
    ) -> None:
        self.flows = flows
        self.states = states
        self.runs = runs
        self._pending: dict[str, list[asyncio.Future[Read]]] = {}
        self._with_runs: set[str] = set()
        self._flush: asyncio.Task[None] | None = None
        self._flushing: set[asyncio.Task[None]] = set()  # strong references

    async def read(self, flow_id: str, runs: bool = False) -> Read:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[Read] = loop.create_future()
        self._pending.setdefault(flow_id, []).append(future)
        if runs and self.runs is not None:
            self._with_runs.add(flow_id)
        if self._flush is None:
            self._flush = loop.create_task(self._read_pending())
            self._flushing.add(self._flush)
            self._flush.add_done_callback(self._flushing.discard)
        return await future

    async def _read_pending(self) -> None:
        # The wake-ups of this moment were submitted as tasks in one pass: by now each
        # has run up to its `read`; one more turn lets stragglers join.
        await asyncio.sleep(0)
        batch, self._pending, self._flush = self._pending, {}, None
        with_runs, self._with_runs = self._with_runs, set()
        ids = list(batch)
        try:
            versions, states, runs = await asyncio.gather(
                self.flows.enabled_versions_of(ids),
                self.states.get_many(ids),
                self._runs_of(sorted(with_runs)),
            )
        except Exception as exc:  # each wake-up fails (and logs) as its own read would
            for futures in batch.values():
                for future in futures:
                    if not future.done():
                        future.set_exception(exc)
            return
        for flow_id, futures in batch.items():
            for future in futures:
                if not future.done():
                    of = runs.get(flow_id, []) if flow_id in with_runs else None
                    future.set_result((versions.get(flow_id), states.get(flow_id), of))

    async def _runs_of(self, flow_ids: Sequence[str]) -> dict[str, list[RunInProgress]]:
        if not flow_ids or self.runs is None:
            return {}
        return await self.runs.in_progress_of(flow_ids)
