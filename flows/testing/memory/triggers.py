"""`MemoryTriggerLog` and `MemoryFailureStreaks`: the trigger log and failure streaks of
SPEC §14, in memory (MongoDB: `storage.trigger_log_repo`, `storage.alerts_repo`)."""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from datetime import datetime

from flows.alerts import Streak
from flows.trigger_log import TriggerDecision


class MemoryTriggerLog:
    """`flows.trigger_log.TriggerLogStore` in memory. No TTL: tests own the clock."""

    def __init__(self) -> None:
        self._decisions: dict[str, TriggerDecision] = {}
        self._unmatched: dict[tuple[str, datetime], Counter[str]] = {}

    async def record(self, decision: TriggerDecision) -> None:
        if decision.id in self._decisions:
            raise ValueError(f"duplicate trigger decision {decision.id}")  # as _id is unique
        self._decisions[decision.id] = decision.model_copy(deep=True)

    async def latest(self, flow_id: str, limit: int) -> list[TriggerDecision]:
        mine = [d for d in self._decisions.values() if d.flow_id == flow_id]
        mine.sort(key=lambda d: (d.at, d.id), reverse=True)
        return [d.model_copy(deep=True) for d in (mine[:limit] if limit else mine)]

    async def add_unmatched(self, team_id: str, minute: datetime, counts: dict[str, int]) -> None:
        self._unmatched.setdefault((team_id, minute), Counter()).update(counts)

    async def unmatched_since(self, team_id: str, since: datetime) -> dict[str, int]:
        total: Counter[str] = Counter()
        for (team, minute), counts in self._unmatched.items():
            if team == team_id and minute >= since:
                total.update(counts)
        return dict(total)


class MemoryFailureStreaks:
    """`flows.alerts.FailureStreakStore` in memory."""

    def __init__(self) -> None:
        self._streaks: dict[str, Streak] = {}

    async def failed(self, team_id: str, flow_id: str, at: datetime | None = None) -> int:
        before = self._streaks.get(flow_id, Streak(0))
        last = before.last_failed_at
        if at is not None and (last is None or at > last):
            last = at
        self._streaks[flow_id] = Streak(before.count + 1, last)
        return before.count + 1

    async def streaks(self, flow_ids: Sequence[str]) -> dict[str, Streak]:
        found = ((flow_id, self._streaks.get(flow_id)) for flow_id in flow_ids)
        return {flow_id: s for flow_id, s in found if s is not None and s.count > 0}

    async def reset(self, flow_id: str, streak: Streak) -> bool:
        if self._streaks.get(flow_id) != streak:
            return False
        self._streaks[flow_id] = Streak(0, streak.last_failed_at)
        return True

    async def forget(self, flow_id: str) -> None:
        self._streaks.pop(flow_id, None)
