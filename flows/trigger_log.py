"""The trigger log (SPEC §14): every decision about a trigger, with its reason, kept 7 days.

"Why didn't my flow run?" has an answer: each time an event, a webhook call or a schedule
slot reaches a flow's trigger, what was decided is recorded — started (with the run id),
filtered by `when`, a repeated delivery, the bot's own message, flow disabled, chain too
deep, skipped by `overlap`, queued, missed while the bot was down, a wrong webhook token,
a concurrency limit. `/flow why <flow> [N]` shows owners the newest ones.

Cheap for busy channels: only events that reached a flow's trigger (the channel, pattern,
emoji… matched) are written one by one. Events that matched no flow are counted in memory
per workspace and written as one aggregate per minute (`TriggerLog.flush`), so a channel
with 100 messages a second adds no write per message. The store's TTL index drops records
after `RETENTION`.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections import Counter
from datetime import datetime, timedelta
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from flows.ports import Clock, IdGenerator
from flows.templating import is_truthy, render_value

log = logging.getLogger(__name__)

RETENTION = timedelta(days=7)
MAX_WHY = 50

Reason = Literal[
    "started",
    "filtered",
    "duplicate",
    "own_message",
    "disabled",
    "too_deep",
    "overlap_skipped",
    "queued",
    "missed",
    "wrong_token",
    "concurrency_limit",
    "condition_error",
]


class TriggerDecision(BaseModel):
    """One decision about one trigger of one flow."""

    id: str
    team_id: str
    flow_id: str
    at: datetime
    trigger: str  # the trigger type: schedule, message, webhook…
    reason: Reason
    run_id: str | None = None
    detail: str = ""  # the event id, the slot, the condition's error…


class TriggerLogStore(Protocol):
    """MongoDB adapter: `storage.trigger_log_repo` (TTL index on `at`)."""

    async def record(self, decision: TriggerDecision) -> None: ...

    async def latest(self, flow_id: str, limit: int) -> list[TriggerDecision]:
        """The newest decisions about a flow, newest first."""
        ...

    async def add_unmatched(self, team_id: str, minute: datetime, counts: dict[str, int]) -> None:
        """Add to the per-minute count of events that reached no flow's trigger."""
        ...

    async def unmatched_since(self, team_id: str, since: datetime) -> dict[str, int]:
        """The events of the workspace that reached no trigger, per event type, counted in
        the minutes from `since` on."""
        ...


class TriggerLog:
    """Records decisions; never lets a failed write stop a trigger."""

    def __init__(
        self,
        store: TriggerLogStore,
        clock: Clock,
        ids: IdGenerator,
        *,
        flush_interval: float = 60.0,
    ) -> None:
        self.store = store
        self.clock = clock
        self.ids = ids
        self.flush_interval = flush_interval
        self._unmatched: dict[str, Counter[str]] = {}
        self._flusher: asyncio.Task[None] | None = None

    async def record(
        self,
        team_id: str,
        flow_id: str,
        trigger: str,
        reason: Reason,
        *,
        run_id: str | None = None,
        detail: str = "",
    ) -> None:
        decision = TriggerDecision(
            id=self.ids.new_id("T"),
            team_id=team_id,
            flow_id=flow_id,
            at=self.clock.now(),
            trigger=trigger,
            reason=reason,
            run_id=run_id,
            detail=detail[:300],
        )
        try:
            await self.store.record(decision)
        except Exception:
            log.exception("recording a trigger decision for %s failed", flow_id)

    def count_unmatched(self, team_id: str, event_type: str) -> None:
        """An event that reached no flow's trigger: counted in memory, written per minute."""
        self._unmatched.setdefault(team_id, Counter())[event_type] += 1

    async def latest(self, flow_id: str, limit: int) -> list[TriggerDecision]:
        return await self.store.latest(flow_id, max(1, min(limit, MAX_WHY)))

    async def unmatched_since(self, team_id: str, since: datetime) -> dict[str, int]:
        """Counts written so far plus those not yet flushed (this process's)."""
        counts = Counter(await self.store.unmatched_since(team_id, since))
        counts.update(self._unmatched.get(team_id, Counter()))
        return dict(counts)

    async def flush(self) -> None:
        pending, self._unmatched = self._unmatched, {}
        minute = self.clock.now().replace(second=0, microsecond=0)
        for team_id, counts in pending.items():
            try:
                await self.store.add_unmatched(team_id, minute, dict(counts))
            except Exception:
                log.exception("writing unmatched event counts failed")

    # --- Service

    async def start(self) -> None:
        self._flusher = asyncio.create_task(self._flush_loop())

    async def stop(self) -> None:
        if self._flusher is not None:
            self._flusher.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._flusher
            self._flusher = None
        await self.flush()

    async def _flush_loop(self) -> None:
        while True:
            await asyncio.sleep(self.flush_interval)
            await self.flush()


def when_allows(
    when: str | None, trigger_type: str, user: str | None, data: dict[str, Any]
) -> bool:
    """A trigger's `when`, evaluated in the template sandbox over `trigger` (what the run
    would see) before any run exists. TemplateError when it cannot be evaluated."""
    if when is None:
        return True
    context = {"trigger": {**data, "type": trigger_type, "user": user}}
    return is_truthy(render_value(when, context))
