"""Modes decide at the right click: everyone, quorum (N of M), first response."""

from __future__ import annotations

import copy
from datetime import datetime, timezone

import pytest

from flows.approval_model import ApprovalRecord, ApprovalResponse, evaluate
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    JSON,
    BotHarness,
    approval_dm,
    approval_of,
    create_flow,
    eventually,
    finished_run,
    response_texts,
    runs_of,
    texts_in,
    waiting_run,
)

MODES = """
name: Offsite
steps:
  - id: ask
    type: approval
    mode: {mode}
    approvers: ["<@U0BOB>", "<@U0CAROL>", "<@U0DAVE>"]
    title: "Offsite {{{{ inputs.n }}}}"
  - {{id: after, type: post_message, channel: "#general",
     text: "{{{{ steps.ask.outcome }}}} at {{{{ steps.ask.responder }}}}"}}
inputs:
  - {{id: n, type: text, default: "1"}}
"""


async def start(bot: BotHarness, mode: str, n: str) -> tuple[str, dict[str, JSON]]:
    """Alice runs flow Offsite<n> asking for approvals in `mode` (quorum: 2 of 3); each
    approver's message, as their client shows it."""
    text = QUORUM.format() if mode == "quorum" else MODES.format(mode=mode)
    flow = await create_flow(bot, text.replace("Offsite\n", f"Offsite{n}\n"))
    await bot.driver.slash(ALICE, f"run Offsite{n} n={n}")
    messages = {
        u: copy.deepcopy(await approval_dm(bot, u, f"Offsite {n}")) for u in (BOB, CAROL, DAVE)
    }
    await waiting_run(bot, flow.id)
    return flow.id, messages


async def click_and_settle(
    bot: BotHarness, flow_id: str, user: str, message: JSON, option: str
) -> ApprovalRecord:
    assert (await bot.driver.click(user, message, f"approval:{option}")).ok
    [run] = await runs_of(bot, flow_id)
    return await eventually(lambda: _answered(bot, run.id, user))


async def _answered(bot: BotHarness, run_id: str, user: str) -> ApprovalRecord | None:
    record = await approval_of(bot, run_id)
    return record if record.response_of(user) is not None else None


async def test_everyone_must_approve_decides_at_the_last_approval(bot: BotHarness) -> None:
    flow_id, dms = await start(bot, "everyone", "1")
    first = await click_and_settle(bot, flow_id, BOB, dms[BOB], "Approve")
    assert first.pending
    # Bob's answer counts once; he is told, and the messages show who answered.
    await eventually(lambda: [t for t in response_texts(bot, BOB) if "recorded" in t])
    assert "U0BOB" in str(bot.emulator.messages_in(CAROL)[-1]["blocks"])
    again = await bot.driver.click(BOB, dms[BOB], "approval:Reject")
    assert again.ok
    await eventually(lambda: [t for t in response_texts(bot, BOB) if "already responded" in t])
    second = await click_and_settle(bot, flow_id, DAVE, dms[DAVE], "Approve")
    assert second.pending and len(second.responses) == 2
    last = await click_and_settle(bot, flow_id, CAROL, dms[CAROL], "Approve")
    assert (last.outcome, last.responder) == ("approved", CAROL)
    [run] = await finished_run(bot, flow_id)
    assert texts_in(bot, "#general")[-1] == f"approved at {CAROL}"
    assert [r["user"] for r in run.steps["ask"].output["responses"]] == [BOB, DAVE, CAROL]


async def test_everyone_is_rejected_by_the_first_rejection(bot: BotHarness) -> None:
    flow_id, dms = await start(bot, "everyone", "2")
    await click_and_settle(bot, flow_id, BOB, dms[BOB], "Approve")
    record = await click_and_settle(bot, flow_id, DAVE, dms[DAVE], "Reject")
    assert (record.outcome, record.responder) == ("rejected", DAVE)
    await finished_run(bot, flow_id)
    assert texts_in(bot, "#general")[-1] == f"rejected at {DAVE}"


QUORUM = MODES.replace("mode: {mode}", "mode: quorum\n    min: 2")


async def test_quorum_two_of_three_approves_at_the_second_approval(bot: BotHarness) -> None:
    flow_id, dms = await start(bot, "quorum", "3")
    assert (await click_and_settle(bot, flow_id, BOB, dms[BOB], "Approve")).pending
    # A rejection while two approvals are still possible does not decide.
    assert (await click_and_settle(bot, flow_id, CAROL, dms[CAROL], "Reject")).pending
    record = await click_and_settle(bot, flow_id, DAVE, dms[DAVE], "Approve")
    assert (record.outcome, record.responder) == ("approved", DAVE)
    await finished_run(bot, flow_id)
    assert texts_in(bot, "#general")[-1] == f"approved at {DAVE}"


async def test_quorum_is_rejected_once_it_cannot_be_reached(bot: BotHarness) -> None:
    flow_id, dms = await start(bot, "quorum", "4")
    assert (await click_and_settle(bot, flow_id, BOB, dms[BOB], "Reject")).pending
    record = await click_and_settle(bot, flow_id, DAVE, dms[DAVE], "Reject")
    assert (record.outcome, record.responder) == ("rejected", DAVE)
    await finished_run(bot, flow_id)
    late = await bot.driver.click(CAROL, dms[CAROL], "approval:Approve")
    assert late.ok
    await eventually(lambda: [t for t in response_texts(bot, CAROL) if "already decided" in t])


async def test_a_quorum_larger_than_the_expanded_approvers_fails_the_step(bot: BotHarness) -> None:
    text = (
        QUORUM.format()
        .replace("min: 2", "min: 2")
        .replace('["<@U0BOB>", "<@U0CAROL>", "<@U0DAVE>"]', '["<!subteam^S0LEADS>"]')
    )
    flow = await create_flow(bot, text)
    await bot.driver.slash(ALICE, "run Offsite")
    [run] = await finished_run(bot, flow.id)
    assert run.status == "failed" and run.error and "quorum of 2" in run.error


def _record(mode: str, approvers: int, minimum: int = 1) -> ApprovalRecord:
    at = datetime(2026, 1, 1, tzinfo=timezone.utc)
    return ApprovalRecord(
        id="A1",
        team_id="T",
        run_id="R",
        step_id="s",
        title="t",
        mode=mode,  # type: ignore[arg-type]
        min=minimum,
        approvers=[f"U{i}" for i in range(approvers)],
        created_at=at,
    )


@pytest.mark.parametrize(
    ("mode", "approvers", "minimum", "answers", "expected"),
    [
        ("first_response", 3, 1, ["Reject"], ("rejected", 0)),
        ("first_response", 3, 1, ["Approve", "Reject"], ("approved", 0)),
        ("everyone", 3, 1, ["Approve", "Approve"], None),
        ("everyone", 3, 1, ["Approve", "Approve", "Approve"], ("approved", 2)),
        ("everyone", 3, 1, ["Approve", "Reject", "Approve"], ("rejected", 1)),
        ("quorum", 5, 3, ["Reject", "Reject"], None),
        ("quorum", 5, 3, ["Reject", "Reject", "Reject"], ("rejected", 2)),
        ("quorum", 5, 3, ["Approve", "Reject", "Approve", "Approve"], ("approved", 3)),
        ("quorum", 4, 1, ["Reject", "Reject", "Approve"], ("approved", 2)),
    ],
)
def test_evaluate_decides_at_the_deciding_response(
    mode: str, approvers: int, minimum: int, answers: list[str], expected: tuple[str, int] | None
) -> None:
    record = _record(mode, approvers, minimum)
    responses = [
        ApprovalResponse(user=f"U{i}", response=a, at=record.created_at)
        for i, a in enumerate(answers)
    ]
    decision = evaluate(record, responses)
    if expected is None:
        assert decision is None
    else:
        assert decision is not None
        assert (decision.outcome, decision.responder) == (expected[0], f"U{expected[1]}")
