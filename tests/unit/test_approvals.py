"""Approvals (`flows.approvals`) on the in-memory stores: who may answer, what decides,
reminders and timeouts on the fake clock, cancelling, and the run they park."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest

from flows.approval_model import (
    ApprovalRecord,
    ApprovalRequest,
    NoApprovers,
    UnknownApprover,
    UnknownChannelName,
)
from tests.builders import ALICE, BOB, CAROL, DAVE, T0, TEAM, flow_record
from tests.unit.conftest import BOT, Engine


def request(approvers: list[str], **fields: object) -> ApprovalRequest:
    return ApprovalRequest(
        team_id=TEAM,
        run_id=str(fields.pop("run_id", "R1")),
        step_id="ask",
        title="Pay 40 EUR?",
        approvers=approvers,
        requester=ALICE,
        **fields,  # type: ignore[arg-type]
    )


async def test_groups_and_channels_expand_to_people_without_the_bot(engine: Engine) -> None:
    record = await engine.approvals.request(request(["<!subteam^S0LEADS>", "<#C0GENERAL>"]))
    assert record.approvers == [BOB, CAROL, ALICE, DAVE]
    assert BOT not in record.approvers
    assert record.requested and len(record.messages) == 4
    assert engine.approval_notifier.kinds(record.id)[:2] == ["request", "notify"]


async def test_an_approval_is_requested_once_per_step(engine: Engine) -> None:
    first = await engine.approvals.request(request([f"<@{BOB}>"]))
    again = await engine.approvals.request(request([f"<@{BOB}>"]))
    assert again.id == first.id
    assert engine.approval_notifier.kinds().count("request") == 1


async def test_approvers_must_be_mentions_and_not_empty(engine: Engine) -> None:
    with pytest.raises(UnknownApprover):
        await engine.approvals.request(request(["bob"]))
    with pytest.raises(NoApprovers):
        await engine.approvals.request(request(["<#C0EMPTY>"]))


async def test_a_channel_may_be_named_by_name(engine: Engine) -> None:
    record = await engine.approvals.request(request(["#general"]))
    assert record.principals == ["C0GENERAL"] and record.approvers == [ALICE, BOB, CAROL, DAVE]
    with pytest.raises(UnknownChannelName) as refused:
        await engine.approvals.request(request(["#nowhere"], run_id="R2"))
    assert "#nowhere" in str(refused.value) and "can see" in str(refused.value)


async def test_the_first_response_decides_by_default(engine: Engine) -> None:
    record = await engine.approvals.request(request([f"<@{BOB}>", f"<@{CAROL}>"]))
    result = await engine.approvals.respond(record.id, CAROL, "Reject", "  too much  ")
    assert result.kind == "decided"
    assert result.record is not None
    assert (result.record.outcome, result.record.responder, result.record.comment) == (
        "rejected",
        CAROL,
        "too much",
    )
    assert (await engine.approvals.respond(record.id, BOB, "Approve")).kind == "already_decided"
    await engine.settle()
    # A negative outcome is told to the requester.
    assert "tell_requester" in engine.approval_notifier.kinds(record.id)


async def test_everyone_must_approve_and_one_no_rejects(engine: Engine) -> None:
    approvers = [f"<@{BOB}>", f"<@{CAROL}>", f"<@{DAVE}>"]
    record = await engine.approvals.request(request(approvers, mode="everyone"))
    assert (await engine.approvals.respond(record.id, BOB, "Approve")).kind == "recorded"
    assert (await engine.approvals.respond(record.id, BOB, "Approve")).kind == "already_responded"
    result = await engine.approvals.respond(record.id, DAVE, "Reject")
    assert result.kind == "decided" and result.record is not None
    assert result.record.outcome == "rejected"


async def test_a_quorum_approves_at_its_threshold(engine: Engine) -> None:
    approvers = [f"<@{BOB}>", f"<@{CAROL}>", f"<@{DAVE}>"]
    record = await engine.approvals.request(request(approvers, mode="quorum", min=2))
    assert (await engine.approvals.respond(record.id, BOB, "Reject")).kind == "recorded"
    assert (await engine.approvals.respond(record.id, CAROL, "Approve")).kind == "recorded"
    result = await engine.approvals.respond(record.id, DAVE, "Approve")
    assert result.kind == "decided" and result.record is not None
    assert (result.record.outcome, result.record.responder) == ("approved", DAVE)


async def test_refusals_are_data(engine: Engine) -> None:
    record = await engine.approvals.request(request([f"<@{BOB}>"]))
    assert (await engine.approvals.respond(record.id, DAVE, "Approve")).kind == "not_approver"
    assert (await engine.approvals.respond(record.id, BOB, "Maybe")).kind == "unknown_option"
    assert (await engine.approvals.respond("A-none", BOB, "Approve")).kind == "not_found"


async def test_pending_for_lists_what_a_person_still_has_to_answer(engine: Engine) -> None:
    one = await engine.approvals.request(request([f"<@{BOB}>"], run_id="R1"))
    two = await engine.approvals.request(request([f"<@{BOB}>", f"<@{CAROL}>"], run_id="R2"))
    assert [r.id for r in await engine.approvals.pending_for(TEAM, BOB)] == [one.id, two.id]
    await engine.approvals.respond(one.id, BOB, "Approve")
    assert [r.id for r in await engine.approvals.pending_for(TEAM, BOB)] == [two.id]


BUDGET = """
name: Budget
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


async def test_a_decision_resumes_the_parked_run(engine: Engine) -> None:
    run = await engine.run(flow_record(BUDGET))
    assert run.status == "waiting" and run.waiting_for is not None
    [record] = await engine.approvals.pending_for(TEAM, BOB)
    await engine.approvals.respond(record.id, BOB, "Approve")
    await engine.approvals.respond(record.id, CAROL, "Approve")
    await engine.settle()
    done = await engine.runs.get(run.id)
    assert done is not None and done.status == "succeeded", done.error
    assert engine.messenger.texts_in("C0GENERAL") == ["budget approved (2 answers)"]
    stored = await engine.approval_store.get(record.id)
    assert stored is not None and stored.resumed


async def test_the_run_goes_on_before_the_messages_are_updated(
    engine: Engine, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Issue 20: decide, resume, the run's next Slack call; then the approval's messages,
    and only once they are updated is the approval marked resumed (a crash before that
    updates them at start)."""
    await engine.run(flow_record(BUDGET))
    [record] = await engine.approvals.pending_for(TEAM, BOB)
    seen: list[tuple[list[str], bool]] = []
    show_outcome = engine.approval_notifier.show_outcome

    async def watched(decided: ApprovalRecord) -> None:
        stored = await engine.approval_store.get(decided.id)
        assert stored is not None
        seen.append((engine.messenger.texts_in("C0GENERAL"), stored.resumed))
        await show_outcome(decided)

    monkeypatch.setattr(engine.approval_notifier, "show_outcome", watched)
    await engine.approvals.respond(record.id, BOB, "Approve")
    await engine.approvals.respond(record.id, CAROL, "Approve")
    await engine.settle()
    assert seen == [(["budget approved (2 answers)"], False)]
    stored = await engine.approval_store.get(record.id)
    assert stored is not None and stored.resumed


async def test_the_reminder_then_the_timeout_on_the_fake_clock(engine: Engine) -> None:
    run = await engine.run(flow_record(BUDGET))
    assert run.wake_at == T0 + timedelta(minutes=40)  # reminder: 20 minutes before timeout
    [record] = await engine.approvals.pending_for(TEAM, BOB)
    await engine.approvals.respond(record.id, BOB, "Approve")
    assert await engine.later(timedelta(minutes=40)) == 1
    reminders = [c for c in engine.approval_notifier.calls if c[0] == "remind"]
    assert reminders == [("remind", record.id, [CAROL])]
    parked = await engine.runs.get(run.id)
    assert parked is not None and parked.status == "waiting"
    assert parked.wake_at == T0 + timedelta(hours=1)
    assert await engine.later(timedelta(minutes=20)) == 1
    done = await engine.runs.get(run.id)
    assert done is not None and done.status == "succeeded"
    assert done.steps["ask"].output["outcome"] == "expired"
    assert engine.messenger.texts_in("C0GENERAL") == ["budget expired (1 answers)"]


async def test_cancelling_the_run_cancels_its_approval(engine: Engine) -> None:
    run = await engine.run(flow_record(BUDGET))
    [record] = await engine.approvals.pending_for(TEAM, BOB)
    await engine.runner.cancel_flow_runs(run.team_id, run.flow_id, ALICE, "the flow was deleted")
    await engine.settle()
    cancelled = await engine.approval_store.get(record.id)
    assert cancelled is not None and cancelled.status == "cancelled"
    assert (cancelled.cancel_reason, cancelled.cancelled_by) == ("the flow was deleted", ALICE)
    assert (await engine.approvals.respond(record.id, BOB, "Approve")).kind == "cancelled"
    assert await engine.approvals.pending_for(TEAM, BOB) == []


async def test_a_decisions_messages_wait_while_a_click_is_in_the_foreground(
    engine: Engine,
) -> None:
    """Issue 20: another click being handled (here: held by hand) goes before the
    decision's messages and its resumed mark; the run itself goes on at once."""
    engine.approvals.foreground.max_wait = 60
    await engine.run(flow_record(BUDGET))
    [record] = await engine.approvals.pending_for(TEAM, BOB)
    click = engine.approvals.foreground.hold()
    await engine.approvals.respond(record.id, BOB, "Approve")
    await engine.approvals.respond(record.id, CAROL, "Approve")
    for _ in range(200):
        if engine.messenger.texts_in("C0GENERAL"):
            break
        await asyncio.sleep(0.005)
    await engine.runner.idle()
    assert engine.messenger.texts_in("C0GENERAL") == ["budget approved (2 answers)"]
    await asyncio.sleep(0.02)
    assert [c for c in engine.approval_notifier.calls if c[0] == "outcome"] == []
    stored = await engine.approval_store.get(record.id)
    assert stored is not None and not stored.resumed
    click.release()
    await engine.settle()
    assert ("outcome", record.id, "approved") in engine.approval_notifier.calls
    stored = await engine.approval_store.get(record.id)
    assert stored is not None and stored.resumed
