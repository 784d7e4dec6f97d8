"""The stores of SPEC §14: the trigger log (decisions newest first, per-minute counts of
events that reached no trigger), failure streaks (one crossing seen once, deleted with the
flow), and the schedule store's slot claims and its one queued slot."""

from __future__ import annotations

from datetime import datetime, timedelta, timezone

from flows.alerts import FailureStreakStore, Streak
from flows.scheduling import ScheduleStateStore
from flows.trigger_log import TriggerDecision, TriggerLogStore
from tests.builders import OTHER_TEAM, TEAM

# Far from today: the TTL index of the MongoDB store must not remove what a test wrote.
NOW = datetime(2099, 1, 5, 9, tzinfo=timezone.utc)
MINUTE = timedelta(minutes=1)
HOUR = timedelta(hours=1)


def decision(
    decision_id: str, flow_id: str = "F1", at: datetime = NOW, **fields: object
) -> TriggerDecision:
    data: dict[str, object] = {
        "id": decision_id,
        "team_id": TEAM,
        "flow_id": flow_id,
        "at": at,
        "trigger": "message",
        "reason": "started",
    }
    data.update(fields)
    return TriggerDecision.model_validate(data)


# ---------------------------------------------------------------- trigger log


async def test_latest_decisions_come_newest_first_per_flow(trigger_log: TriggerLogStore) -> None:
    await trigger_log.record(decision("T1", at=NOW, run_id="R1"))
    await trigger_log.record(decision("T2", at=NOW + MINUTE, reason="filtered", detail="Ev1"))
    await trigger_log.record(decision("T3", at=NOW + MINUTE))  # same moment: by id
    await trigger_log.record(decision("T4", flow_id="F2", at=NOW + HOUR))
    latest = await trigger_log.latest("F1", 10)
    assert [d.id for d in latest] == ["T3", "T2", "T1"]
    assert latest[1] == decision("T2", at=NOW + MINUTE, reason="filtered", detail="Ev1")
    assert latest[2].run_id == "R1"
    assert [d.id for d in await trigger_log.latest("F1", 2)] == ["T3", "T2"]
    assert await trigger_log.latest("F9", 10) == []


async def test_latest_decisions_are_the_same_however_far_apart(
    trigger_log: TriggerLogStore,
) -> None:
    # Around the real clock (the MongoDB store reads windows of `at` going back from it),
    # within the log's 7 days: ahead of it, now, minutes, hours and days ago.
    now = datetime.now(timezone.utc)
    for n, hours in enumerate([-24, 0, 0.5, 0.99, 5, 30, 80, 150]):
        for m in range(2):  # two at the same moment: by id, the greater first
            await trigger_log.record(decision(f"T{n}{1 - m}", at=now - HOUR * hours))
    newest_first = [f"T{n}{m}" for n in range(8) for m in (1, 0)]
    for limit in (1, 3, 4, 5, 9, 15, 16, 17):
        assert [d.id for d in await trigger_log.latest("F1", limit)] == newest_first[:limit]


async def test_unmatched_events_are_counted_per_minute_and_added_up(
    trigger_log: TriggerLogStore,
) -> None:
    await trigger_log.add_unmatched(TEAM, NOW, {"message": 3})
    await trigger_log.add_unmatched(TEAM, NOW, {"message": 2, "reaction_added": 1})
    await trigger_log.add_unmatched(TEAM, NOW + MINUTE, {"message": 10})
    await trigger_log.add_unmatched(TEAM, NOW - HOUR, {"message": 1000})  # too old
    await trigger_log.add_unmatched(OTHER_TEAM, NOW, {"message": 7})
    assert await trigger_log.unmatched_since(TEAM, NOW) == {"message": 15, "reaction_added": 1}
    assert await trigger_log.unmatched_since(TEAM, NOW + MINUTE) == {"message": 10}
    assert await trigger_log.unmatched_since(OTHER_TEAM, NOW) == {"message": 7}
    assert await trigger_log.unmatched_since("T9", NOW - HOUR) == {}
    # The counts are no flow's decisions.
    assert await trigger_log.latest("F1", 10) == []


# ---------------------------------------------------------------- failure streaks


async def reset_streak(streaks: FailureStreakStore, flow_id: str) -> int:
    """What a success does (`flows.alerts`): the count it resets, 0 when there is none."""
    streak = (await streaks.streaks([flow_id])).get(flow_id)
    return streak.count if streak is not None and await streaks.reset(flow_id, streak) else 0


async def test_a_streak_counts_failures_and_a_success_resets_it_once(
    failure_streaks: FailureStreakStore,
) -> None:
    assert await reset_streak(failure_streaks, "F1") == 0  # nothing to reset
    assert [await failure_streaks.failed(TEAM, "F1") for _ in range(3)] == [1, 2, 3]
    assert await failure_streaks.failed(TEAM, "F2") == 1
    assert await reset_streak(failure_streaks, "F1") == 3
    assert await reset_streak(failure_streaks, "F1") == 0  # the recovery is seen once
    assert await failure_streaks.failed(TEAM, "F1") == 1


async def test_streaks_are_read_in_one_batch_and_reset_by_compare_and_set(
    failure_streaks: FailureStreakStore,
) -> None:
    assert await failure_streaks.streaks(["F1", "F2"]) == {}  # none: an empty answer
    assert await failure_streaks.failed(TEAM, "F1", NOW) == 1
    assert await failure_streaks.failed(TEAM, "F1", NOW + MINUTE) == 2
    assert await failure_streaks.failed(TEAM, "F1", NOW) == 3  # ended earlier: kept the latest
    assert await failure_streaks.failed(TEAM, "F2", NOW) == 1
    assert await reset_streak(failure_streaks, "F2") == 1  # F2 has no streak any more
    streaks = await failure_streaks.streaks(["F1", "F2", "F9"])
    assert streaks == {"F1": Streak(3, NOW + MINUTE)}
    stale = Streak(2, NOW + MINUTE)
    assert not await failure_streaks.reset("F1", stale)  # not the streak any more
    assert await failure_streaks.reset("F1", streaks["F1"])
    assert not await failure_streaks.reset("F1", streaks["F1"])  # the recovery is seen once
    assert await failure_streaks.streaks(["F1"]) == {}
    assert await failure_streaks.failed(TEAM, "F1", NOW + HOUR) == 1
    assert await failure_streaks.streaks(["F1"]) == {"F1": Streak(1, NOW + HOUR)}


async def test_a_streak_is_forgotten_with_its_flow(failure_streaks: FailureStreakStore) -> None:
    await failure_streaks.failed(TEAM, "F1")
    await failure_streaks.failed(TEAM, "F1")
    await failure_streaks.failed(TEAM, "F2")
    await failure_streaks.forget("F1")
    await failure_streaks.forget("F9")  # unknown: nothing happens
    assert await reset_streak(failure_streaks, "F1") == 0
    assert await failure_streaks.failed(TEAM, "F1") == 1
    assert await reset_streak(failure_streaks, "F2") == 1


# ---------------------------------------------------------------- schedule slots


async def test_a_slot_is_claimed_by_one_caller_and_only_forward(
    schedules: ScheduleStateStore,
) -> None:
    assert not await schedules.claim_slot("F1", NOW)  # no schedule state
    await schedules.activate(TEAM, "F1", 1, NOW)
    assert not await schedules.claim_slot("F1", NOW)  # not after the last slot
    assert await schedules.claim_slot("F1", NOW + HOUR)
    assert not await schedules.claim_slot("F1", NOW + HOUR)  # the other process lost
    assert not await schedules.claim_slot("F1", NOW + MINUTE)  # never backwards
    state = await schedules.get("F1")
    assert state is not None and state.last_slot == NOW + HOUR


async def test_one_slot_waits_at_most_and_is_taken_once(schedules: ScheduleStateStore) -> None:
    assert not await schedules.queue_slot("F1", NOW)  # no schedule state
    assert await schedules.take_queued("F1") is None
    await schedules.activate(TEAM, "F1", 1, NOW)
    assert await schedules.take_queued("F1") is None
    assert await schedules.queue_slot("F1", NOW + HOUR)
    assert not await schedules.queue_slot("F1", NOW + 2 * HOUR)  # one waits, at most
    state = await schedules.get("F1")
    assert state is not None and state.queued_slot == NOW + HOUR
    assert await schedules.take_queued("F1") == NOW + HOUR
    assert await schedules.take_queued("F1") is None  # taken once
    assert await schedules.queue_slot("F1", NOW + 2 * HOUR)  # room again
    state = await schedules.get("F1")
    assert state is not None and state.queued_slot == NOW + 2 * HOUR
