"""What a schedule's wake-ups read, in one query per collection for those due together.

Many flows may share a slot (1,000 flows a minute is about 20 on each second; a daily cron
at 09:00 may be thousands). Each wake-up needs the version of its flow (is the flow armed
still the enabled version?) and its schedule state. Read one by one, that is two round
trips per flow, queued behind each other at the database: the last flow of a busy second
started ~2 x 0.5 ms x the flows of that second late. `WakeReads` gathers the wake-ups that
come in the same turn of the event loop (APScheduler submits every job due at a moment in
one pass) and answers them with one `$in` read of the flow versions and one of the states.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from typing import TYPE_CHECKING, Protocol

if TYPE_CHECKING:
    from flows.scheduling import ScheduleState

# (team id, version) of an enabled flow; None: deleted or disabled.
Armed = tuple[str, int] | None


class VersionSource(Protocol):
    async def enabled_versions_of(self, flow_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """flow id -> (team id, version) of the enabled flows among these."""
        ...


class StateSource(Protocol):
    async def get_many(self, flow_ids: Sequence[str]) -> dict[str, ScheduleState]: ...


class WakeReads:
    """`read(flow_id)`: (team id and version if enabled, schedule state), read together
    with those of the other wake-ups of the same moment."""

    def __init__(self, flows: VersionSource, states: StateSource) -> None:
        self.flows = flows
        self.states = states
        self._pending: dict[str, list[asyncio.Future[tuple[Armed, ScheduleState | None]]]] = {}
        self._flush: asyncio.Task[None] | None = None
        self._flushing: set[asyncio.Task[None]] = set()  # strong references

    async def read(self, flow_id: str) -> tuple[Armed, ScheduleState | None]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[tuple[Armed, ScheduleState | None]] = loop.create_future()
        self._pending.setdefault(flow_id, []).append(future)
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
        ids = list(batch)
        try:
            versions, states = await asyncio.gather(
                self.flows.enabled_versions_of(ids), self.states.get_many(ids)
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
                    future.set_result((versions.get(flow_id), states.get(flow_id)))


async def nothing() -> None:
    """An awaitable None (a read not needed, in a `gather`)."""
    return None
