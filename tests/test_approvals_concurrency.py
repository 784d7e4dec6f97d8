"""Exactly one decision: double clicks, Slack retries and racing approvers."""

from __future__ import annotations

import asyncio
import copy

from tests.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    JSON,
    BotHarness,
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

RACE = """
name: Race
steps:
  - id: ask
    type: approval
    mode: {mode}
    approvers: ["<#C0GENERAL>"]
    title: "Race {{{{ run.id }}}}"
  - {{id: after, type: post_message, channel: "#results",
     text: "{{{{ steps.ask.outcome }}}} by {{{{ steps.ask.responder }}}}"}}
"""
APPROVERS = (ALICE, BOB, CAROL, DAVE)


async def dms(bot: BotHarness) -> dict[str, JSON]:
    return {u: copy.deepcopy(await approval_dm(bot, u, "Race ")) for u in APPROVERS}


async def test_fifty_concurrent_clicks_make_one_decision_and_one_resume(bot: BotHarness) -> None:
    flow = await create_flow(bot, RACE.format(mode="first_response"))
    await bot.driver.slash(ALICE, "run Race")
    messages = await dms(bot)
    run = await waiting_run(bot, flow.id)

    clicks = []
    for i in range(50):
        user = APPROVERS[i % 4]
        option = "Approve" if i % 3 else "Reject"
        clicks.append(bot.driver.click(user, messages[user], f"approval:{option}"))
    responses = await asyncio.gather(*clicks)
    assert all(r.status == 200 and not r.timed_out for r in responses)
    # Slack retries of the same payloads change nothing either.
    retries = [bot.driver.block_action(u, "approval:Approve", retry=True) for u in APPROVERS]
    assert all(r.status == 200 for r in await asyncio.gather(*retries))

    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    record = await approval_of(bot, run.id)
    assert record.status == "decided" and len(record.responses) == 1
    winner = record.responses[0]
    assert (record.responder, record.option) == (winner.user, winner.response)
    assert run.steps["ask"].output["responder"] == winner.user
    # One resumed run: the step after the approval ran once.
    await asyncio.sleep(0.5)
    assert texts_in(bot, "#results") == [f"{record.outcome} by {winner.user}"]
    assert len(await runs_of(bot, flow.id)) == 1
    # Every approval message shows the one outcome; the losers were told.
    for user in APPROVERS:
        [message] = [
            m
            for m in bot.emulator.messages_in(user)
            if "Race " in m["text"] and not m["text"].startswith("Your request")
        ]
        assert not has_buttons(message) and f"<@{winner.user}>" in blocks_text(message)
    losers = [u for u in APPROVERS if u != winner.user]
    for user in losers:
        await eventually(
            lambda u=user: [t for t in response_texts(bot, u) if "already decided" in t]
        )
    assert bot.emulator.ephemerals and not [
        e for e in bot.emulator.ephemerals if "recorded" in e["text"]
    ]


async def test_racing_clicks_in_everyone_mode_count_each_approver_once(bot: BotHarness) -> None:
    flow = await create_flow(bot, RACE.format(mode="everyone"))
    await bot.driver.slash(ALICE, "run Race")
    messages = await dms(bot)
    await waiting_run(bot, flow.id)
    clicks = [
        bot.driver.click(APPROVERS[i % 4], messages[APPROVERS[i % 4]], "approval:Approve")
        for i in range(40)
    ]
    assert all(r.ok for r in await asyncio.gather(*clicks))
    [run] = await finished_run(bot, flow.id)
    record = await approval_of(bot, run.id)
    assert record.outcome == "approved"
    assert sorted(r.user for r in record.responses) == sorted(APPROVERS)
    assert record.responder == record.responses[-1].user
    await asyncio.sleep(0.3)
    assert texts_in(bot, "#results") == [f"approved by {record.responder}"]
