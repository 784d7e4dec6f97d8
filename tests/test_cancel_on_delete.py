"""Deleting a flow cancels its runs in progress and their pending approvals (real parts:
the bot over HTTP, the Slack emulator, the embedded database; a fake clock only)."""

from __future__ import annotations

import copy
import json
from collections.abc import AsyncIterator
from datetime import datetime, timedelta, timezone
from typing import Any

import pytest

from emulator.server import SlackEmulator
from flows.approvals import ApprovalRecord
from flows.records import RunRecord
from flows.runner import Runner
from storage.approvals_repo import ApprovalsRepo
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    TEAM,
    BotHarness,
    create_flow,
    make_settings,
    runs_of,
    start_bot,
    stop_bot,
    texts_in,
)
from tests.support import eventually as wait_for

JSON = dict[str, Any]
DELETED_BY_ALICE = f"the flow was deleted by <@{ALICE}>"
HOUR = timedelta(hours=1)

TRIP = """
name: Trip
notify: "#trip-bots"
inputs:
  - {id: how, type: text, default: "ask"}
steps:
  - id: route
    type: condition
    if: "{{ inputs.how == 'wait' }}"
    then:
      - {id: nap, type: delay, duration: 1h}
    else:
      - {id: ask, type: approval, approvers: ["<@U0BOB>", "<@U0CAROL>"],
         title: "Trip {{ inputs.how }}"}
  - {id: after, type: post_message, channel: "#general", text: "trip went on"}
"""

OTHER = """
name: Other
steps:
  - {id: nap, type: delay, duration: 1h}
  - {id: after, type: post_message, channel: "#general", text: "other went on"}
"""


@pytest.fixture
async def clocked(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> AsyncIterator[tuple[BotHarness, FakeClock]]:
    """The bot on a fake clock, so that a delay's end can be reached at will."""
    clock = FakeClock()
    harness = await start_bot(emulator, make_settings(emulator, mongo_uri, db_name), clock)
    try:
        yield harness, clock
    finally:
        await stop_bot(harness)


# ------------------------------------------------------------------ helpers


def runner(bot: BotHarness) -> Runner:
    return bot.flowbot.deps.runner


def all_text(message: JSON) -> str:
    return message.get("text", "") + json.dumps(message.get("blocks") or [], ensure_ascii=False)


def has_buttons(message: JSON) -> bool:
    return any(b.get("type") == "actions" for b in message.get("blocks") or [])


def answers_to(bot: BotHarness, user: str) -> list[str]:
    """What `user` was told ephemerally (the emulator shows response_url answers too)."""
    return [all_text(e) for e in bot.emulator.ephemerals if e["user"] == user]


async def command(bot: BotHarness, user: str, text: str, contains: str) -> JSON:
    """`/flow text`, then the ephemeral answer containing `contains`."""
    since = len(bot.emulator.ephemerals)
    assert (await bot.driver.slash(user, text)).ok

    def answer() -> JSON | None:
        hits = [
            e
            for e in bot.emulator.ephemerals[since:]
            if e["user"] == user and contains in all_text(e)
        ]
        return hits[-1] if hits else None

    found: JSON = await wait_for(answer)
    return found


async def delete_through_slack(bot: BotHarness, user: str, name: str) -> None:
    """`/flow delete <name>`, then the Confirm button; returns once it says Deleted."""
    question = await command(bot, user, f"delete {name}", "cannot be undone")
    assert (await bot.driver.click(user, question, "flow_delete_confirm")).ok
    await wait_for(lambda: "Deleted" in all_text(question))


async def parked(bot: BotHarness, flow_id: str, count: int) -> list[RunRecord]:
    async def check() -> list[RunRecord] | None:
        runs = await runs_of(bot, flow_id)
        waiting = len(runs) == count and all(r.status == "waiting" for r in runs)
        return runs if waiting else None

    runs: list[RunRecord] = await wait_for(check)
    return runs


async def approval_dm(bot: BotHarness, user: str, title: str) -> JSON:
    def find() -> JSON | None:
        hits = [m for m in bot.emulator.messages_in(user) if title in m["text"]]
        return hits[0] if hits and has_buttons(hits[0]) else None

    found: JSON = await wait_for(find)
    return found


async def approval_of(bot: BotHarness, run_id: str, step_id: str) -> ApprovalRecord:
    record = await ApprovalsRepo(bot.db).get_for_step(run_id, step_id)
    assert record is not None
    return record


async def run_of(bot: BotHarness, run_id: str) -> RunRecord:
    run = await runner(bot).get(run_id)
    assert run is not None
    return run


# ------------------------------------------------------------------ tests


async def test_deleting_a_flow_cancels_its_waiting_runs_and_approvals(
    clocked: tuple[BotHarness, FakeClock],
) -> None:
    bot, clock = clocked
    trip = await create_flow(bot, TRIP)
    other = await create_flow(bot, OTHER)
    assert (await bot.driver.slash(ALICE, "run Trip how=wait")).ok
    assert (await bot.driver.slash(ALICE, "run Trip how=ask")).ok
    assert (await bot.driver.slash(ALICE, "run Other")).ok
    to_bob = copy.deepcopy(await approval_dm(bot, BOB, "Trip ask"))
    await approval_dm(bot, CAROL, "Trip ask")
    runs = await parked(bot, trip.id, 2)
    delayed = next(r for r in runs if r.inputs["how"] == "wait")
    asking = next(r for r in runs if r.inputs["how"] == "ask")
    [untouched] = await parked(bot, other.id, 1)
    assert delayed.waiting_for == "delay" and (asking.waiting_for or "").startswith("approval:")
    # Bob's App Home lists the approval; the history (before the delete) offers Details.
    await bot.driver.event(bot.driver.app_home_opened(BOB))
    await wait_for(lambda: "Trip ask" in all_text(bot.emulator.home_views.get(BOB) or {}))
    history = await command(bot, ALICE, "history Trip", "Last runs")

    await delete_through_slack(bot, ALICE, "Trip")

    # Both runs are cancelled, saying why and by whom; nothing is left to wake them.
    for run_id, stopped_at in ((delayed.id, "nap"), (asking.id, "ask")):
        run = await run_of(bot, run_id)
        assert run.status == "cancelled" and run.error == DELETED_BY_ALICE
        assert run.finished_at is not None and run.wake_at is None and run.waiting_for is None
        assert run.error_step == stopped_at and "after" not in run.steps
    # The approval is cancelled; every message says so, without buttons.
    record = await approval_of(bot, asking.id, "ask")
    assert record.status == "cancelled" and record.responses == [] and record.cancelled_by == ALICE
    for user in (BOB, CAROL):

        def updated(user: str = user) -> JSON | None:
            [message] = [m for m in bot.emulator.messages_in(user) if "Trip ask" in m["text"]]
            return None if has_buttons(message) else message

        message = await wait_for(updated)
        assert "Cancelled: the flow was deleted" in message["text"]
        assert "Cancelled: the flow was deleted" in all_text(message)
    # The notify channel's run messages and the starter say it was cancelled.
    for run in (delayed, asking):

        def notice(run: RunRecord = run) -> str | None:
            mine = [m for m in bot.emulator.messages_in("#trip-bots") if run.id in all_text(m)]
            done = [all_text(m) for m in mine if m["text"].startswith("Run of Trip cancelled")]
            return done[0] if done else None

        shown = await wait_for(notice)
        assert DELETED_BY_ALICE in shown

    def told() -> list[str]:
        return [t for t in answers_to(bot, ALICE) if "was cancelled" in t]

    assert len(await wait_for(lambda: len(told()) >= 2 and told())) == 2
    assert all(DELETED_BY_ALICE in t for t in told())
    # App Home and /flow approvals drop the cancelled approval.
    await wait_for(lambda: "Trip ask" not in all_text(bot.emulator.home_views[BOB]))
    await command(bot, BOB, "approvals", "No approvals are waiting for you")

    # A late click on the old message is refused, and changes nothing.
    assert (await bot.driver.click(BOB, to_bob, "approval:Approve")).ok
    refusal = await wait_for(lambda: [t for t in answers_to(bot, BOB) if "was cancelled" in t])
    assert "This request was cancelled: the flow was deleted" in refusal[0]
    after_click = await approval_of(bot, asking.id, "ask")
    assert after_click.model_dump() == record.model_dump()

    # The run details still open (for its starter), showing the cancellation.
    assert (await bot.driver.click(ALICE, history, "run_details", value=delayed.id)).ok
    view = await wait_for(
        lambda: next(
            (
                v
                for v in bot.emulator.views.values()
                if v["user"] == ALICE and delayed.id in all_text(v)
            ),
            None,
        )
    )
    details = all_text(view)
    assert "*Cancelled*: " + DELETED_BY_ALICE in details and "delay — cancelled" in details

    # Past the delays' end: the waker resumes the other flow's run, never the cancelled.
    assert (await run_of(bot, untouched.id)).status == "waiting"
    clock.advance(timedelta(hours=2))
    await runner(bot).wake_due()

    async def other_done() -> RunRecord | None:
        run = await run_of(bot, untouched.id)
        return run if run.finished else None

    finished = await wait_for(other_done)
    assert finished.status == "succeeded" and finished.error is None
    await runner(bot).wake_due()
    await runner(bot).idle()
    assert texts_in(bot, "#general") == ["other went on"]
    for run_id in (delayed.id, asking.id):
        run = await run_of(bot, run_id)
        assert run.status == "cancelled" and "after" not in run.steps


BUSY = """
name: Busy
steps:
  - {id: first, type: post_message, channel: "#general", text: "first"}
  - {id: second, type: post_message, channel: "#general", text: "second"}
"""


async def test_a_run_being_driven_stops_at_its_next_step_boundary(bot: BotHarness) -> None:
    flow = await create_flow(bot, BUSY)
    # The first step's post is rate limited (Slack says retry in 1s, three times): the
    # run is being driven while the flow is deleted.
    bot.emulator.fail_next("chat.postMessage", 429, count=3)
    await bot.driver.slash(ALICE, "run Busy")
    await wait_for(lambda: bot.emulator.rate_limited_count >= 1)
    [running] = await runs_of(bot, flow.id)
    assert running.status == "running"

    await delete_through_slack(bot, ALICE, "Busy")

    async def ended() -> RunRecord | None:
        run = await run_of(bot, running.id)
        return run if run.finished else None

    run = await wait_for(ended)
    # The step in flight was done and is kept; the run stopped there, cancelled.
    assert run.status == "cancelled" and run.error == DELETED_BY_ALICE
    assert run.steps["first"].status == "succeeded" and "second" not in run.steps
    await runner(bot).idle()
    assert texts_in(bot, "#general") == ["first"]
    told = await wait_for(lambda: [t for t in answers_to(bot, ALICE) if "was cancelled" in t])
    assert f"Your run of Busy was cancelled: {DELETED_BY_ALICE}." in told[0]
    stored = await bot.db["runs"].find_one({"_id": run.id})
    assert stored is not None and "cancel_requested" not in stored and "lease_owner" not in stored


async def test_history_and_details_show_a_cancelled_run(bot: BotHarness) -> None:
    flow = await create_flow(bot, OTHER)
    await bot.driver.slash(ALICE, "run Other")
    [run] = await parked(bot, flow.id, 1)

    count = await runner(bot).cancel_flow_runs(TEAM, flow.id, CAROL, "an owner stopped it")
    assert count == 1
    assert await runner(bot).cancel_flow_runs(TEAM, flow.id, CAROL, "again") == 0

    history = await command(bot, ALICE, "history Other", "Last runs")
    line = all_text(history)
    assert "*cancelled*" in line and f"an owner stopped it by <@{CAROL}>" in line
    assert (await bot.driver.click(ALICE, history, "run_details", value=run.id)).ok
    view = await wait_for(
        lambda: next((v for v in bot.emulator.views.values() if v["user"] == ALICE), None)
    )
    details = all_text(view)
    assert "cancelled" in details and f"*Cancelled*: an owner stopped it by <@{CAROL}>" in details
    assert "`nap` delay — cancelled" in details and "`after` post_message — not run" in details


async def test_runs_left_by_a_dead_process_are_cancelled_too(bot: BotHarness) -> None:
    flow = await create_flow(bot, OTHER)
    for _ in range(2):
        assert (await bot.driver.slash(ALICE, "run Other")).ok
    abandoned, stalled = await parked(bot, flow.id, 2)
    engine = runner(bot)
    await engine.stop()  # its waker would claim the runs planted below
    now = datetime.now(timezone.utc)
    # A process crashed while driving the first (lease expired); the second is still
    # leased to a process that will die before its next step.
    for run, lease_until in ((abandoned, now - timedelta(seconds=1)), (stalled, now + HOUR)):
        await bot.db["runs"].update_one(
            {"_id": run.id},
            {"$set": {"status": "running", "lease_owner": "dead", "lease_until": lease_until}},
        )

    await delete_through_slack(bot, ALICE, "Other")

    ended = await run_of(bot, abandoned.id)
    assert ended.status == "cancelled" and ended.error == DELETED_BY_ALICE
    flagged = await bot.db["runs"].find_one({"_id": stalled.id})
    assert flagged is not None and flagged["status"] == "running"
    assert flagged["cancel_requested"]["by"] == ALICE

    # Its lease runs out: the waker claims it and ends it at once, running no step.
    await bot.db["runs"].update_one({"_id": stalled.id}, {"$set": {"lease_until": now}})
    await engine.start()

    async def cancelled() -> RunRecord | None:
        run = await run_of(bot, stalled.id)
        return run if run.finished else None

    run = await wait_for(cancelled)
    assert run.status == "cancelled" and run.error == DELETED_BY_ALICE
    assert run.steps["nap"].status == "waiting" and "after" not in run.steps
    await engine.idle()
    assert texts_in(bot, "#general") == []
