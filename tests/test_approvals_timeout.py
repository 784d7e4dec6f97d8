"""Waiting approvals survive restarts: reminders and timeouts through the runner's
durable wake-ups, and a decision whose run was not resumed before a crash."""

from __future__ import annotations

import copy
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient

from emulator.server import SlackEmulator
from flows.approval_model import ApprovalResponse, Decision
from storage.approvals_repo import ApprovalsRepo
from tests.fakes import FakeClock
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    BotHarness,
    RestartableBot,
    approval_dm,
    approval_of,
    blocks_text,
    create_flow,
    eventually,
    finished_run,
    has_buttons,
    response_texts,
    runs_of,
    texts_in,
    waiting_run,
)

TIMED = """
name: Budget
notify: "#budget-bots"
steps:
  - id: ask
    type: approval
    mode: everyone
    approvers: ["<@U0BOB>", "<@U0CAROL>"]
    title: "Budget 2027"
    timeout: 1h
    reminder: 20m
  - {id: after, type: post_message, channel: "#general",
     text: "budget {{ steps.ask.outcome }} ({{ steps.ask.responses | length }} answers)"}
"""


@pytest.fixture
async def restartable(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> AsyncIterator[RestartableBot]:
    """The bot on a fake clock, restartable in-process on the same database."""
    bot = RestartableBot(emulator, mongo_uri, db_name, FakeClock())
    try:
        yield bot
    finally:
        await bot.stop()


async def test_reminder_then_timeout_expire_the_approval_across_restarts(
    restartable: RestartableBot,
) -> None:
    clock = restartable.clock
    bot = await restartable.start()
    flow = await create_flow(bot, TIMED)
    await bot.driver.slash(ALICE, "run Budget")
    to_bob = await approval_dm(bot, BOB, "Budget 2027")
    to_carol = copy.deepcopy(await approval_dm(bot, CAROL, "Budget 2027"))
    run = await waiting_run(bot, flow.id)
    requested_at = clock.now()
    assert run.wake_at == requested_at + timedelta(minutes=40)  # the reminder, 20m before
    assert (await bot.driver.click(BOB, to_bob, "approval:Approve")).ok
    await eventually(lambda: _answered(bot, run.id))

    # Restart before the reminder is due; the new process reminds those still waiting.
    bot = await restartable.restart()
    clock.advance(timedelta(minutes=41))
    reminders = await eventually(
        lambda: [m for m in bot.emulator.messages_in(CAROL) if "Reminder" in m["text"]]
    )
    assert len(reminders) == 1
    assert not [m for m in bot.emulator.messages_in(BOB) if "Reminder" in m["text"]]
    run = await waiting_run(bot, flow.id)
    assert run.wake_at == requested_at + timedelta(hours=1)

    # Restart in the middle again; the timeout passes while the bot is down.
    await restartable.stop()
    clock.advance(timedelta(minutes=30))
    bot = await restartable.start()
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    out = run.steps["ask"].output
    assert out["outcome"] == "expired" and out["responder"] is None
    assert texts_in(bot, "#general")[-1] == "budget expired (1 answers)"
    record = await approval_of(bot, run.id)
    assert record.status == "decided" and record.reminded and record.resumed
    for user in (BOB, CAROL):
        [message] = [
            m
            for m in bot.emulator.messages_in(user)
            if "Budget 2027" in m["text"] and "Reminder" not in m["text"]
        ]
        assert not has_buttons(message) and "Expired" in blocks_text(message)
    assert [m for m in bot.emulator.messages_in(ALICE) if "expired" in m["text"].lower()]
    assert any("Expired" in t for t in texts_in(bot, "#budget-bots"))
    assert len([m for m in bot.emulator.messages_in(CAROL) if "Reminder" in m["text"]]) == 1

    # Too late: Carol is told it expired; nothing changes.
    assert (await bot.driver.click(CAROL, to_carol, "approval:Approve")).ok
    await eventually(lambda: [t for t in response_texts(bot, CAROL) if "Expired" in t])
    assert len((await approval_of(bot, run.id)).responses) == 1


async def _answered(bot: BotHarness, run_id: str) -> bool:
    return bool((await approval_of(bot, run_id)).responses)


async def test_a_decision_recorded_before_a_crash_resumes_the_run_at_start(
    restartable: RestartableBot,
) -> None:
    bot = await restartable.start()
    flow = await create_flow(bot, TIMED.replace("mode: everyone", "mode: first_response"))
    await bot.driver.slash(ALICE, "run Budget")
    await approval_dm(bot, BOB, "Budget 2027")
    run = await waiting_run(bot, flow.id)
    await restartable.stop()

    # The process died right after its compare-and-set, before resuming the run.
    client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(
        restartable.mongo_uri, tz_aware=True
    )
    try:
        repo = ApprovalsRepo(client[restartable.db_name])
        record = await repo.get_for_step(run.id, "ask")
        assert record is not None
        response = ApprovalResponse(user=CAROL, response="Approve", at=restartable.clock.now())
        decided = await repo.add_response(
            record.id, record.version, response, Decision.by(record, response)
        )
        assert decided is not None and not decided.resumed
    finally:
        client.close()

    bot = await restartable.start()
    [run] = await finished_run(bot, flow.id)
    assert run.steps["ask"].output["responder"] == CAROL
    assert texts_in(bot, "#general")[-1] == "budget approved (1 answers)"
    assert (await approval_of(bot, run.id)).resumed
    assert len(await runs_of(bot, flow.id)) == 1
