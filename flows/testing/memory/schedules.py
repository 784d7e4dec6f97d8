"""`MemoryScheduleStore`: per-flow schedule state."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from flows.scheduling import SKIP_HISTORY, ScheduleState, SkippedSlots


class MemoryScheduleStore:
    """`flows.scheduling.ScheduleStateStore` in memory (MongoDB: `storage.schedules_repo`)."""

    def __init__(self) -> None:
        self._states: dict[str, ScheduleState] = {}

    async def get(self, flow_id: str) -> ScheduleState | None:
        state = self._states.get(flow_id)
        return state.model_copy(deep=True) if state is not None else None

    async def get_many(self, flow_ids: Sequence[str]) -> dict[str, ScheduleState]:
        return {i: s.model_copy(deep=True) for i in flow_ids if (s := self._states.get(i))}

    async def activate(
        self, team_id: str, flow_id: str, version: int, at: datetime
    ) -> ScheduleState:
        state = self._states.get(flow_id)
        if state is None:
            state = ScheduleState(flow_id=flow_id, team_id=team_id, version=version, last_slot=at)
            self._states[flow_id] = state
        elif not state.active or state.version != version:
            # A restart keeps the skip history.
            state.team_id = team_id
            state.version = version
            state.active = True
            state.last_slot = at
        return state.model_copy(deep=True)

    async def deactivate(self, flow_id: str) -> None:
        state = self._states.get(flow_id)
        if state is not None:
            state.active = False

    async def delete(self, flow_id: str) -> None:
        self._states.pop(flow_id, None)

    async def advance(self, flow_id: str, slot: datetime) -> None:
        state = self._states.get(flow_id)
        if state is not None:
            state.last_slot = max(state.last_slot, slot)

    async def record_skipped(self, flow_id: str, skipped: SkippedSlots) -> bool:
        state = self._states.get(flow_id)
        if state is None or not state.last_slot < skipped.last:
            return False
        state.last_slot = skipped.last
        state.skipped_total += skipped.count
        state.skipped = [*state.skipped, skipped.model_copy()][-SKIP_HISTORY:]
        return True

    async def claim_slot(self, flow_id: str, slot: datetime) -> bool:
        state = self._states.get(flow_id)
        if state is None or not state.last_slot < slot:
            return False
        state.last_slot = slot
        return True

    async def queue_slot(self, flow_id: str, slot: datetime) -> bool:
        state = self._states.get(flow_id)
        if state is None or state.queued_slot is not None:
            return False
        state.queued_slot = slot
        return True

    async def take_queued(self, flow_id: str) -> datetime | None:
        state = self._states.get(flow_id)
        if state is None or state.queued_slot is None:
            return None
        slot, state.queued_slot = state.queued_slot, None
        return slot
