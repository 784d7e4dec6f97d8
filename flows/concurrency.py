"""Flow-level `concurrency` (SPEC §12): at most N runs of a flow running or waiting at
once; further runs are `queued` and start in order (oldest first) as others end.

A run takes one of the flow's N slots before it starts. The slots are one document per
flow holding the ids of the runs that have them (`RunSlotStore.take` adds an id only
while fewer than N are there: a compare-and-set, so two bot processes on one database
never hand out N+1). A run that finds no free slot, or finds older runs queued for one,
is stored `queued` and `held` (the waker does not start it). When a run ends (succeeds,
fails, is cancelled) its slot is freed and the oldest held run takes it and is released
to the waker (`held` cleared: the next waker pass of any process starts it). A pass of
this service every few seconds does the same for slots freed by a process that died, and
frees the slots of runs that ended without freeing them.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Protocol

from flows.records import FlowRecord, RunRecord
from flows.run_model import CancelRequest
from flows.trigger_log import TriggerLog

log = logging.getLogger(__name__)


class RunSlotStore(Protocol):
    """The `run_slots` collection: per flow, the ids of the runs holding a slot."""

    async def take(self, flow_id: str, run_id: str, limit: int) -> bool:
        """Add `run_id` if fewer than `limit` runs hold a slot (or it holds one already)."""
        ...

    async def release(self, flow_id: str, run_id: str) -> None: ...

    async def holders(self, flow_id: str) -> list[str]: ...


class HeldRuns(Protocol):
    """What concurrency needs of the runs store (`flows.run_model.RunStore` has it)."""

    async def oldest_held(self, flow_id: str) -> RunRecord | None:
        """The oldest queued run of the flow waiting for a slot."""
        ...

    async def held_flows(self, limit: int) -> list[tuple[str, int]]:
        """(flow id, concurrency) of flows with runs waiting for a slot."""
        ...

    async def unhold(self, run_id: str) -> bool:
        """Let the waker start this queued run (it has a slot now)."""
        ...

    async def get(self, run_id: str) -> RunRecord | None: ...


class Concurrency:
    """Admits runs into their flow's slots, and starts queued runs as slots free up.
    A `Service` (start/stop) for its sweeping pass; `kick` wakes the runner's waker."""

    def __init__(
        self,
        slots: RunSlotStore,
        runs: HeldRuns,
        kick: asyncio.Event | None = None,
        interval: float = 2.0,
        trigger_log: TriggerLog | None = None,
    ) -> None:
        self.slots = slots
        self.runs = runs
        self.trigger_log = trigger_log
        self.kick = kick
        self.interval = interval
        self._task: asyncio.Task[None] | None = None

    async def admit(self, flow: FlowRecord, run_id: str) -> bool:
        """May this new run start now? True: it holds a slot (or the flow has no limit)."""
        limit = flow.definition.concurrency
        if not limit:
            return True
        older = await self.runs.oldest_held(flow.id) is not None
        # Older runs waiting for a slot go first; else a free slot is taken, if any.
        if not older and await self.slots.take(flow.id, run_id, limit):
            return True
        if self.trigger_log is not None:
            detail = f"{limit} run(s) at once: queued"
            await self.trigger_log.record(
                flow.team_id,
                flow.id,
                flow.definition.trigger.type,
                "concurrency_limit",
                run_id=run_id,
                detail=detail,
            )
        return False

    async def take(self, flow_id: str, limit: int | None, run_id: str) -> bool:
        """A run that starts again (`/flow retry`) takes a slot if its flow has a limit."""
        return True if not limit else await self.slots.take(flow_id, run_id, limit)

    async def run_ended(self, run: RunRecord) -> None:
        """A run ended: free its slot and start the oldest held run in it."""
        limit = run.definition.concurrency
        if not limit:
            return
        await self.slots.release(run.flow_id, run.id)
        await self.promote(run.flow_id, limit)

    async def run_cancelled(self, run: RunRecord, _request: CancelRequest) -> None:
        await self.run_ended(run)

    async def promote(self, flow_id: str, limit: int) -> int:
        """Give free slots to held runs, oldest first. Returns how many were started."""
        started = 0
        for _ in range(limit):
            run = await self.runs.oldest_held(flow_id)
            if run is None or not await self.slots.take(flow_id, run.id, limit):
                break
            if await self.runs.unhold(run.id):
                started += 1
        if started and self.kick is not None:
            self.kick.set()
        return started

    async def sweep(self) -> int:
        """Free the slots of runs that ended (a process died before freeing them), and
        start held runs in free slots. Returns how many runs were started."""
        started = 0
        for flow_id, limit in await self.runs.held_flows(limit=50):
            for run_id in await self.slots.holders(flow_id):
                run = await self.runs.get(run_id)
                if run is None or run.finished:
                    await self.slots.release(flow_id, run_id)
                elif run.status == "queued" and run.held:
                    await self.runs.unhold(run_id)  # took its slot, then the process died
            started += await self.promote(flow_id, limit)
        return started

    # --- Service

    async def start(self) -> None:
        if self._task is None:
            self._task = asyncio.create_task(self._loop(), name="concurrency-sweep")

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)
            self._task = None

    async def _loop(self) -> None:
        while True:
            try:
                await self.sweep()
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("concurrency sweep failed")
            await asyncio.sleep(self.interval)


__all__ = ["Concurrency", "HeldRuns", "RunSlotStore"]
