"""`flows.ask_model.AskStore`: one ask per step, the answer by compare-and-set (pending and
the responder among the people asked), expiry, cancelling, the lists the bot reads."""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Any

import pytest

from flows.ask_model import AskMessage, AskRecord, AskStore
from flows.definition import FlowInput
from tests.builders import ALICE, BOB, CAROL, DAVE, OTHER_TEAM, T0, TEAM

LATER = T0 + timedelta(minutes=10)


def ask_record(
    ask_id: str = "K1",
    *,
    run_id: str = "R1",
    step_id: str = "form",
    people: list[str] | None = None,
    created_at: datetime = T0,
    **fields: Any,
) -> AskRecord:
    return AskRecord(
        id=ask_id,
        team_id=fields.pop("team_id", TEAM),
        run_id=run_id,
        step_id=step_id,
        flow_id="F1",
        flow_name="Onboarding",
        requester=ALICE,
        title="Your laptop?",
        fields=[
            FlowInput(id="model", type="choice", choices=["Mac", "Linux"], required=True),
            FlowInput(id="start", type="date"),
        ],
        principals=["S0IT"],
        people=people if people is not None else [BOB, CAROL],
        direct=people if people is not None else [BOB, CAROL],
        created_at=created_at,
        timeout_at=created_at + timedelta(days=1),
        **fields,
    )


async def test_one_ask_per_run_step(asks: AskStore) -> None:
    first = ask_record("K1")
    assert await asks.create(first) == first
    again = await asks.create(ask_record("K2"))
    assert again == first
    assert await asks.get("K2") is None
    assert await asks.get("K1") == first
    assert await asks.get_for_step("R1", "form") == first
    assert await asks.get_for_step("R1", "other") is None
    assert await asks.get_for_step("R2", "form") is None
    assert await asks.get("missing") is None


async def test_a_second_ask_with_the_same_id_is_refused(asks: AskStore) -> None:
    await asks.create(ask_record("K1"))
    with pytest.raises(Exception):  # noqa: B017 - each backend raises its own error
        await asks.create(ask_record("K1", run_id="R2"))
    assert await asks.get_for_step("R2", "form") is None


async def test_the_answer_is_a_compare_and_set(asks: AskStore) -> None:
    await asks.create(ask_record())
    # Not asked: refused, and nothing changes.
    assert await asks.answer("K1", DAVE, {"model": "Mac"}, LATER) is None
    assert await asks.answer("missing", BOB, {"model": "Mac"}, LATER) is None
    still = await asks.get("K1")
    assert still is not None and still.pending and still.answers == {}
    answers = {"model": "Linux", "start": "2026-11-09", "tags": ("a", "b")}
    answered = await asks.answer("K1", CAROL, answers, LATER)
    assert answered is not None
    assert (answered.status, answered.responder, answered.answered_at) == (
        "answered",
        CAROL,
        LATER,
    )
    # As storage gives it back: plain data.
    assert answered.answers == {"model": "Linux", "start": "2026-11-09", "tags": ["a", "b"]}
    assert await asks.get("K1") == answered
    # A racing submission by another person asked loses; so does answering twice.
    assert await asks.answer("K1", BOB, {"model": "Mac"}, LATER) is None
    assert await asks.answer("K1", CAROL, {"model": "Mac"}, LATER) is None
    stored = await asks.get("K1")
    assert stored is not None and stored.responder == CAROL
    assert stored.answers["model"] == "Linux"
    assert stored.output()["answers"] == {"model": "Linux", "start": "2026-11-09"}


async def test_only_a_pending_ask_expires_or_is_cancelled(asks: AskStore) -> None:
    await asks.create(ask_record("K1", run_id="R1"))
    await asks.create(ask_record("K2", run_id="R2"))
    expired = await asks.expire("K1", LATER)
    assert expired is not None
    assert (expired.status, expired.answered_at, expired.responder, expired.answers) == (
        "expired",
        LATER,
        None,
        {},
    )
    assert not expired.resumed
    assert await asks.expire("K1", LATER) is None
    assert await asks.cancel("K1", LATER, "the flow was deleted", ALICE) is None
    assert await asks.answer("K1", BOB, {"model": "Mac"}, LATER) is None
    cancelled = await asks.cancel("K2", LATER, "the flow was deleted", ALICE)
    assert cancelled is not None
    assert (
        cancelled.status,
        cancelled.cancel_reason,
        cancelled.cancelled_by,
        cancelled.answered_at,
    ) == ("cancelled", "the flow was deleted", ALICE, LATER)
    # A cancelled ask is not handed back to its run at start.
    assert cancelled.resumed
    assert await asks.expire("K2", LATER) is None
    assert await asks.answer("K2", BOB, {"model": "Mac"}, LATER) is None
    assert await asks.expire("missing", LATER) is None
    assert await asks.cancel("missing", LATER, "gone", None) is None


async def test_pending_for_lists_posted_open_asks_oldest_first(asks: AskStore) -> None:
    later = ask_record("K1", run_id="R1", created_at=T0 + timedelta(minutes=1))
    earlier = ask_record("K2", run_id="R2", created_at=T0)
    not_posted = ask_record("K3", run_id="R3")
    answered = ask_record("K4", run_id="R4", created_at=T0 + timedelta(minutes=2))
    elsewhere = ask_record("K5", run_id="R5", team_id=OTHER_TEAM)
    only_dave = ask_record("K6", run_id="R6", people=[DAVE])
    for record in (later, earlier, not_posted, answered, elsewhere, only_dave):
        await asks.create(record)
    message = AskMessage(channel="D1", ts="1.1", person=BOB)
    for ask_id in ("K1", "K2", "K4", "K5", "K6"):
        await asks.set_messages(ask_id, [message])
    await asks.answer("K4", BOB, {"model": "Mac"}, LATER)
    assert [r.id for r in await asks.pending_for(TEAM, BOB)] == ["K2", "K1"]
    assert [r.id for r in await asks.pending_for(TEAM, CAROL)] == ["K2", "K1"]
    assert [r.id for r in await asks.pending_for(TEAM, DAVE)] == ["K6"]
    assert [r.id for r in await asks.pending_for(OTHER_TEAM, BOB)] == ["K5"]
    stored = await asks.get("K1")
    assert stored is not None and stored.requested and stored.messages == [message]
    unposted = await asks.get("K3")
    assert unposted is not None and not unposted.requested and unposted.messages == []


async def test_pending_page_gives_the_oldest_and_counts_them_all(asks: AskStore) -> None:
    message = AskMessage(channel="D1", ts="1.1", person=BOB)
    for n in range(5):
        created = T0 + timedelta(minutes=5 - n)  # inserted newest first
        await asks.create(ask_record(f"K{n}", run_id=f"R{n}", created_at=created))
        await asks.set_messages(f"K{n}", [message])
    await asks.create(ask_record("K9", run_id="R9"))  # not posted
    await asks.answer("K4", BOB, {"model": "Mac"}, LATER)  # the oldest is answered
    records, total = await asks.pending_page(TEAM, BOB, 2)
    assert ([r.id for r in records], total) == (["K3", "K2"], 4)
    records, total = await asks.pending_page(TEAM, BOB, 10)
    assert ([r.id for r in records], total) == (["K3", "K2", "K1", "K0"], 4)
    assert await asks.pending_page(TEAM, BOB, 0) == ([], 4)
    assert await asks.pending_page(TEAM, DAVE, 2) == ([], 0)
    assert records == await asks.pending_for(TEAM, BOB)


async def test_pending_of_run(asks: AskStore) -> None:
    await asks.create(ask_record("K1", step_id="one"))
    await asks.create(ask_record("K2", step_id="two"))
    await asks.create(ask_record("K3", step_id="three"))
    await asks.create(ask_record("K4", run_id="R2"))
    await asks.expire("K2", LATER)
    await asks.answer("K3", BOB, {}, LATER)
    assert [r.id for r in await asks.pending_of_run("R1")] == ["K1"]
    assert await asks.pending_of_run("R9") == []


async def test_the_reminder_flag_flips_once(asks: AskStore) -> None:
    await asks.create(ask_record())
    assert await asks.mark_reminded("K1")
    assert not await asks.mark_reminded("K1")
    stored = await asks.get("K1")
    assert stored is not None and stored.reminded
    await asks.create(ask_record("K2", run_id="R2"))
    await asks.expire("K2", LATER)
    assert not await asks.mark_reminded("K2")
    assert not await asks.mark_reminded("missing")


async def test_unresumed_lists_closed_asks_until_marked(asks: AskStore) -> None:
    await asks.create(ask_record("K1", run_id="R1"))
    await asks.create(ask_record("K2", run_id="R2"))
    await asks.create(ask_record("K3", run_id="R3"))
    await asks.create(ask_record("K4", run_id="R4"))
    await asks.expire("K1", LATER)
    await asks.answer("K2", BOB, {"model": "Mac"}, LATER)
    await asks.cancel("K3", LATER, "deleted", None)
    assert sorted(r.id for r in await asks.unresumed()) == ["K1", "K2"]
    await asks.mark_resumed("K1")
    assert [r.id for r in await asks.unresumed()] == ["K2"]
    await asks.mark_resumed("K2")
    assert await asks.unresumed() == []
    await asks.mark_resumed("missing")


async def test_records_come_out_as_copies(asks: AskStore) -> None:
    record = ask_record()
    await asks.create(record)
    record.people.append(DAVE)
    fetched = await asks.get("K1")
    assert fetched is not None and DAVE not in fetched.people
    fetched.status = "answered"
    assert await asks.pending_of_run("R1") != []
    assert await asks.answer("K1", DAVE, {}, LATER) is None
