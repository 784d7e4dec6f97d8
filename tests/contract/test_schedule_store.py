"""`flows.scheduling.ScheduleStateStore`: activation per version, a last slot that only
moves forward, and skips recorded by exactly one caller."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from flows.scheduling import SKIP_HISTORY, ScheduleStateStore, SkippedSlots
from tests.builders import T0, TEAM

HOUR = timedelta(hours=1)


def skipped(first: int, last: int, count: int = 1) -> SkippedSlots:
    return SkippedSlots(count=count, first=T0 + first * HOUR, last=T0 + last * HOUR, recorded_at=T0)


async def test_activation_starts_once_per_version(schedules: ScheduleStateStore) -> None:
    assert await schedules.get("F1") is None
    state = await schedules.activate(TEAM, "F1", 1, T0)
    assert (state.flow_id, state.team_id, state.version, state.active, state.last_slot) == (
        "F1",
        TEAM,
        1,
        True,
        T0,
    )
    assert state.skipped_total == 0 and state.skipped == []
    # Active for this version already: unchanged (another replica got there first).
    again = await schedules.activate(TEAM, "F1", 1, T0 + HOUR)
    assert again.last_slot == T0
    # A new version restarts the schedule.
    restarted = await schedules.activate(TEAM, "F1", 2, T0 + 2 * HOUR)
    assert (restarted.version, restarted.last_slot) == (2, T0 + 2 * HOUR)


async def test_a_deactivated_schedule_restarts_when_activated(
    schedules: ScheduleStateStore,
) -> None:
    await schedules.activate(TEAM, "F1", 1, T0)
    await schedules.record_skipped("F1", skipped(1, 2, count=2))
    await schedules.deactivate("F1")
    state = await schedules.get("F1")
    assert state is not None and not state.active
    restarted = await schedules.activate(TEAM, "F1", 1, T0 + 5 * HOUR)
    assert restarted.active and restarted.last_slot == T0 + 5 * HOUR
    assert restarted.skipped_total == 2  # the skip history survives a restart
    await schedules.deactivate("F9")  # unknown: nothing happens


async def test_the_last_slot_only_moves_forward(schedules: ScheduleStateStore) -> None:
    await schedules.activate(TEAM, "F1", 1, T0)
    await schedules.advance("F1", T0 + 2 * HOUR)
    await schedules.advance("F1", T0 + HOUR)
    state = await schedules.get("F1")
    assert state is not None and state.last_slot == T0 + 2 * HOUR
    await schedules.advance("F9", T0)
    assert await schedules.get("F9") is None


async def test_a_skip_is_recorded_by_one_caller(schedules: ScheduleStateStore) -> None:
    await schedules.activate(TEAM, "F1", 1, T0)
    assert await schedules.record_skipped("F1", skipped(1, 3, count=3))
    assert not await schedules.record_skipped("F1", skipped(1, 3, count=3))
    assert not await schedules.record_skipped("F1", skipped(1, 2))
    state = await schedules.get("F1")
    assert state is not None
    assert state.last_slot == T0 + 3 * HOUR and state.skipped_total == 3
    assert state.skipped == [skipped(1, 3, count=3)]
    assert not await schedules.record_skipped("F9", skipped(1, 3))


async def test_the_skip_history_keeps_the_latest(schedules: ScheduleStateStore) -> None:
    await schedules.activate(TEAM, "F1", 1, T0)
    for n in range(1, SKIP_HISTORY + 3):
        assert await schedules.record_skipped("F1", skipped(n, n))
    state = await schedules.get("F1")
    assert state is not None
    assert len(state.skipped) == SKIP_HISTORY
    assert state.skipped[0] == skipped(3, 3) and state.skipped_total == SKIP_HISTORY + 2


async def test_delete_forgets_the_schedule(schedules: ScheduleStateStore) -> None:
    await schedules.activate(TEAM, "F1", 1, T0)
    await schedules.delete("F1")
    assert await schedules.get("F1") is None
    await schedules.delete("F1")


async def test_states_are_read_in_bulk(schedules: Any) -> None:
    for n in range(1, 4):
        await schedules.activate(TEAM, f"F{n}", n, T0)
    few = await schedules.get_many(["F1", "F3", "F9"])
    assert {k: v.version for k, v in few.items()} == {"F1": 1, "F3": 3}
    # Many at once (a start): the same answer.
    many = await schedules.get_many(["F2", *(f"X{n}" for n in range(300))])
    assert list(many) == ["F2"] and many["F2"].version == 2
