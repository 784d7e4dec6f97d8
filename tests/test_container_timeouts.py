"""`timeout` on container steps from outside (SPEC §12): when a for_each, parallel or try
runs past it, it fails with a timeout error, its unfinished body stops, and the waiting
steps inside are closed (approvals cancelled, called runs cancelled). On a fake clock."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import timedelta

import pytest

from emulator.server import SlackEmulator
from flows.records import RunRecord
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    BOB,
    BotHarness,
    approval_dm,
    approval_of,
    create_flow,
    eventually,
    finished_run,
    has_buttons,
    make_settings,
    runs_of,
    start_bot,
    stop_bot,
    texts_in,
)


@pytest.fixture
async def timed(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> AsyncIterator[tuple[BotHarness, FakeClock]]:
    clock = FakeClock()
    bot = await start_bot(emulator, make_settings(emulator, mongo_uri, db_name), clock)
    try:
        yield bot, clock
    finally:
        await stop_bot(bot)


async def parked(bot: BotHarness, flow_id: str) -> RunRecord:
    async def check() -> RunRecord | None:
        runs = await runs_of(bot, flow_id)
        return runs[0] if runs and runs[0].status == "waiting" else None

    run: RunRecord = await eventually(check)
    return run


CHILD = """
name: Slow child
steps:
  - {id: nap, type: delay, duration: 1h}
  - {id: woke, type: post_message, channel: "#general", text: "child woke"}
"""

FAN = """
name: Fan
steps:
  - id: fan
    type: parallel
    timeout: 10m
    branches:
      - - {id: ask, type: approval, approvers: ["<@U0BOB>"], title: "Ship it?"}
        - {id: shipped, type: post_message, channel: "#general", text: "shipped"}
      - - {id: call, type: call_flow, flow: Slow child}
      - - {id: quick, type: post_message, channel: "#general", text: "quick"}
  - {id: after, type: post_message, channel: "#general", text: "after"}
"""


async def test_a_parallel_past_its_timeout_fails_and_closes_what_waits_inside(
    timed: tuple[BotHarness, FakeClock],
) -> None:
    bot, clock = timed
    child = await create_flow(bot, CHILD)
    flow = await create_flow(bot, FAN)
    await bot.driver.slash(ALICE, "run Fan")
    run = await parked(bot, flow.id)
    assert run.wake_at is not None and run.wake_at <= clock.now() + timedelta(minutes=10)
    await approval_dm(bot, BOB, "Ship it?")
    [child_run] = await runs_of(bot, child.id)

    clock.advance(timedelta(minutes=9))  # not yet
    assert (await runs_of(bot, flow.id))[0].status == "waiting"
    clock.advance(timedelta(minutes=1, seconds=1))
    [done] = await finished_run(bot, flow.id)
    assert done.status == "failed"
    assert done.error_step == "fan" and "timed out after 10m" in (done.error or "")
    assert done.steps["ask"].status == "failed" and "stopped" in (done.steps["ask"].error or "")
    assert done.steps["call"].status == "failed"
    # The approval is cancelled and its message has no buttons; the child run cancelled.
    assert (await approval_of(bot, run.id, "ask")).status == "cancelled"
    await eventually(
        lambda: all(
            not has_buttons(m) for m in bot.emulator.messages_in(BOB) if "Ship it" in m["text"]
        )
    )
    [child_done] = await finished_run(bot, child.id)
    assert child_done.id == child_run.id and child_done.status == "cancelled"
    assert texts_in(bot, "#general") == ["quick"]


LOOP = """
name: Loop
steps:
  - id: guard
    type: try
    steps:
      - id: each
        type: for_each
        timeout: 5m
        items: [1, 2, 3]
        steps:
          - {id: hi, type: post_message, channel: "#general", text: "item {{ item }}"}
          - id: late
            type: condition
            if: "{{ item > 1 }}"
            then: [{id: nap, type: delay, duration: 1h}]
    catch:
      - {id: said, type: post_message, channel: "#general", text: "caught {{ error.message }}"}
  - {id: quick, type: for_each, timeout: 1h, items: [1, 2], steps: [{id: q, type: post_message,
     channel: "#general", text: "q{{ item }}"}]}
"""


async def test_a_loop_past_its_timeout_is_caught_and_a_quick_one_succeeds(
    timed: tuple[BotHarness, FakeClock],
) -> None:
    bot, clock = timed
    flow = await create_flow(bot, LOOP)
    await bot.driver.slash(ALICE, "run Loop")
    await parked(bot, flow.id)  # item 2 naps for an hour
    clock.advance(timedelta(minutes=4))
    assert (await runs_of(bot, flow.id))[0].status == "waiting"
    clock.advance(timedelta(minutes=1))  # the deadline counts from the loop's start
    [done] = await finished_run(bot, flow.id)
    assert done.status == "succeeded", done.error
    assert done.steps["each"].status == "failed"
    assert "timed out after 5m" in (done.steps["each"].error or "")
    assert done.steps["each[1]/nap"].status == "failed"
    assert "each[2]/hi" not in done.steps
    assert done.steps["quick"].output["count"] == 2
    texts = texts_in(bot, "#general")
    assert texts[:2] == ["item 1", "item 2"] and texts[-2:] == ["q1", "q2"]
    assert "caught" in texts[2] and "timed out after 5m" in texts[2]


GUARDED = """
name: Guarded
steps:
  - id: guard
    type: try
    timeout: 1h
    on_error: continue
    steps:
      - {id: ask, type: ask, to: "<@U0BOB>", title: "Your order?",
         fields: [{id: dish, type: text}]}
    finally:
      - {id: tidy, type: post_message, channel: "#general", text: "tidy"}
  - {id: after, type: post_message, channel: "#general", text: "went on: {{ steps.guard.ok }}"}
"""


async def test_a_try_past_its_timeout_closes_its_form_and_the_run_goes_on(
    timed: tuple[BotHarness, FakeClock],
) -> None:
    bot, clock = timed
    flow = await create_flow(bot, GUARDED)
    await bot.driver.slash(ALICE, "run Guarded")
    run = await parked(bot, flow.id)
    clock.advance(timedelta(hours=1, seconds=1))
    [done] = await finished_run(bot, flow.id)
    assert done.status == "succeeded", done.error
    assert done.steps["guard"].status == "failed"
    assert "timed out after 1h" in (done.steps["guard"].error or "")
    asks = bot.db["asks"]
    record = await asks.find_one({"run_id": run.id})
    assert record is not None and record["status"] == "cancelled"
    # The body stopped: its finally did not run either; the run went on.
    assert texts_in(bot, "#general") == ["went on: False"]
