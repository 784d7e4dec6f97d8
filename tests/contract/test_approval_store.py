"""`flows.approval_model.ApprovalStore`: one approval per step, responses by
compare-and-set, expiry, cancelling, the lists the bot reads."""

from __future__ import annotations

from datetime import timedelta

from flows.approval_model import (
    ApprovalMessage,
    ApprovalResponse,
    ApprovalStore,
    Decision,
)
from tests.builders import ALICE, BOB, CAROL, DAVE, OTHER_TEAM, T0, TEAM, approval_record

LATER = T0 + timedelta(minutes=10)


def answer(user: str, option: str = "Approve") -> ApprovalResponse:
    return ApprovalResponse(user=user, response=option, at=LATER)


async def test_one_approval_per_run_step(approvals: ApprovalStore) -> None:
    first = approval_record("A1")
    assert await approvals.create(first) == first
    again = await approvals.create(approval_record("A2"))
    assert again.id == "A1"
    assert await approvals.get("A2") is None
    assert await approvals.get_for_step("R1", "ask") == first
    assert await approvals.get_for_step("R1", "other") is None


async def test_a_response_is_a_compare_and_set_on_the_version(approvals: ApprovalStore) -> None:
    await approvals.create(approval_record(mode="everyone"))
    first = await approvals.add_response("A1", 0, answer(BOB), None)
    assert first is not None and first.version == 1 and first.pending
    assert [r.user for r in first.responses] == [BOB]
    # A racing writer read version 0 too: refused.
    assert await approvals.add_response("A1", 0, answer(CAROL), None) is None
    # Not an approver; or answering twice: refused.
    assert await approvals.add_response("A1", 1, answer(DAVE), None) is None
    assert await approvals.add_response("A1", 1, answer(BOB), None) is None
    decision = Decision("approved", "Approve", CAROL, "ok", LATER)
    decided = await approvals.add_response("A1", 1, answer(CAROL), decision)
    assert decided is not None
    assert (decided.status, decided.outcome, decided.responder, decided.comment) == (
        "decided",
        "approved",
        CAROL,
        "ok",
    )
    assert decided.decided_at == LATER and decided.version == 2
    assert await approvals.add_response("A1", 2, answer(BOB), None) is None


async def test_a_decision_from_the_record_read_is_the_record_stored(
    approvals: ApprovalStore,
) -> None:
    await approvals.create(approval_record(mode="everyone"))
    first = await approvals.add_response("A1", 0, answer(BOB), None)
    assert first is not None
    at = LATER + timedelta(microseconds=123_456)  # stored to the millisecond
    response = ApprovalResponse(user=CAROL, response="Reject", comment="no", at=at)
    decision = Decision("rejected", "Reject", CAROL, "no", at)
    decided = await approvals.add_response("A1", 1, response, decision, current=first)
    assert decided is not None and decided == await approvals.get("A1")
    assert decided.version == 2 and decided.outcome == "rejected"
    # A stale record read (another response landed first) decides nothing.
    assert await approvals.add_response("A1", 1, answer(DAVE), decision, current=first) is None


async def test_only_a_pending_approval_expires_or_is_cancelled(approvals: ApprovalStore) -> None:
    await approvals.create(approval_record("A1", run_id="R1"))
    await approvals.create(approval_record("A2", run_id="R2"))
    expired = await approvals.expire("A1", LATER)
    assert expired is not None
    assert (expired.status, expired.outcome, expired.option, expired.decided_at) == (
        "decided",
        "expired",
        None,
        LATER,
    )
    assert await approvals.expire("A1", LATER) is None
    assert await approvals.cancel("A1", LATER, "the flow was deleted", ALICE) is None
    cancelled = await approvals.cancel("A2", LATER, "the flow was deleted", ALICE)
    assert cancelled is not None
    assert (
        cancelled.status,
        cancelled.outcome,
        cancelled.cancel_reason,
        cancelled.cancelled_by,
    ) == (
        "cancelled",
        "cancelled",
        "the flow was deleted",
        ALICE,
    )
    assert await approvals.expire("A2", LATER) is None


async def test_pending_for_lists_requested_unanswered_approvals_oldest_first(
    approvals: ApprovalStore,
) -> None:
    later = approval_record("A1", run_id="R1", created_at=T0 + timedelta(minutes=1))
    earlier = approval_record("A2", run_id="R2", created_at=T0)
    not_posted = approval_record("A3", run_id="R3")
    answered = approval_record(
        "A4", run_id="R4", mode="everyone", created_at=T0 + timedelta(minutes=2)
    )
    elsewhere = approval_record("A5", run_id="R5", team_id=OTHER_TEAM)
    for record in (later, earlier, not_posted, answered, elsewhere):
        await approvals.create(record)
    message = ApprovalMessage(channel="D1", ts="1.1", approver=BOB)
    for approval_id in ("A1", "A2", "A4", "A5"):
        await approvals.set_messages(approval_id, [message])
    await approvals.add_response("A4", 0, answer(BOB), None)
    assert [r.id for r in await approvals.pending_for(TEAM, BOB)] == ["A2", "A1"]
    assert [r.id for r in await approvals.pending_for(TEAM, CAROL)] == ["A2", "A1", "A4"]
    stored = await approvals.get("A1")
    assert stored is not None and stored.requested and stored.messages == [message]


async def test_pending_page_gives_the_oldest_and_counts_them_all(
    approvals: ApprovalStore,
) -> None:
    message = ApprovalMessage(channel="D1", ts="1.1", approver=BOB)
    for n in range(5):
        created = T0 + timedelta(minutes=5 - n)  # inserted newest first
        await approvals.create(approval_record(f"A{n}", run_id=f"R{n}", created_at=created))
        await approvals.set_messages(f"A{n}", [message])
    await approvals.create(approval_record("A9", run_id="R9"))  # not posted
    await approvals.add_response("A4", 0, answer(BOB), None)  # BOB answered the oldest
    records, total = await approvals.pending_page(TEAM, BOB, 2)
    assert ([r.id for r in records], total) == (["A3", "A2"], 4)
    records, total = await approvals.pending_page(TEAM, CAROL, 2)
    assert ([r.id for r in records], total) == (["A4", "A3"], 5)
    records, total = await approvals.pending_page(TEAM, BOB, 10)
    assert ([r.id for r in records], total) == (["A3", "A2", "A1", "A0"], 4)
    assert await approvals.pending_page(TEAM, BOB, 0) == ([], 4)
    assert await approvals.pending_page(OTHER_TEAM, BOB, 2) == ([], 0)
    assert records == await approvals.pending_for(TEAM, BOB)


async def test_pending_of_run(approvals: ApprovalStore) -> None:
    await approvals.create(approval_record("A1", step_id="one"))
    await approvals.create(approval_record("A2", step_id="two"))
    await approvals.create(approval_record("A3", run_id="R2"))
    await approvals.expire("A2", LATER)
    assert [r.id for r in await approvals.pending_of_run("R1")] == ["A1"]


async def test_the_reminder_flag_flips_once(approvals: ApprovalStore) -> None:
    await approvals.create(approval_record())
    assert await approvals.mark_reminded("A1")
    assert not await approvals.mark_reminded("A1")
    await approvals.create(approval_record("A2", run_id="R2"))
    await approvals.expire("A2", LATER)
    assert not await approvals.mark_reminded("A2")


async def test_unresumed_lists_decided_approvals_until_marked(approvals: ApprovalStore) -> None:
    await approvals.create(approval_record("A1", run_id="R1"))
    await approvals.create(approval_record("A2", run_id="R2"))
    await approvals.create(approval_record("A3", run_id="R3"))
    await approvals.expire("A1", LATER)
    await approvals.cancel("A3", LATER, "deleted", None)
    assert [r.id for r in await approvals.unresumed()] == ["A1"]
    await approvals.mark_resumed("A1")
    assert await approvals.unresumed() == []
