"""Approvals end to end: signed clicks over HTTP, the emulator's Slack, the embedded DB."""

from __future__ import annotations

import copy
from typing import Any

from flows.records import FlowRecord
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    JSON,
    TEAM,
    BotHarness,
    approval_dm,
    approval_of,
    blocks_text,
    buttons_of,
    comment_on,
    create_flow,
    eventually,
    finished_run,
    has_buttons,
    response_texts,
    runs_of,
    texts_in,
    waiting_run,
)

FIRST = """
name: Laptop
notify: "#approvals-bots"
inputs:
  - {id: model, type: text, default: "X1"}
steps:
  - id: ask
    type: approval
    approvers: ["<@U0BOB>", "<@U0CAROL>"]
    title: "Laptop {{ inputs.model }}"
    details: "for <@{{ run.started_by }}>"
  - {id: after, type: post_message, channel: "#general",
     text: "{{ steps.ask.outcome }} by {{ steps.ask.responder }}: {{ steps.ask.comment }}"}
"""


async def test_first_response_approves_updates_every_message_and_resumes(bot: BotHarness) -> None:
    flow = await create_flow(bot, FIRST)
    response = await bot.driver.slash(ALICE, "run Laptop model=T14")
    assert response.ok
    to_bob = await approval_dm(bot, BOB, "Laptop T14")
    # A copy, as Carol's client still shows it when she clicks late.
    to_carol = copy.deepcopy(await approval_dm(bot, CAROL, "Laptop T14"))
    assert "for <@U0ALICE>" in blocks_text(to_bob)
    run = await waiting_run(bot, flow.id)
    assert run.waiting_for and run.waiting_for.startswith("approval:")
    notices = texts_in(bot, "#approvals-bots")
    assert any("Approval requested" in t for t in notices)

    click = await bot.driver.click(BOB, to_bob, "approval:Approve")
    assert click.ok and click.elapsed < 3
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded", run.error
    assert texts_in(bot, "#general")[-1] == f"approved by {BOB}: "
    out = run.steps["ask"].output
    assert out["outcome"] == "approved" and out["responder"] == BOB and out["option"] == "Approve"
    assert [(r["user"], r["response"]) for r in out["responses"]] == [(BOB, "Approve")]

    # Every approval message now shows the outcome and who decided, without buttons.
    for user in (BOB, CAROL):
        [message] = [m for m in bot.emulator.messages_in(user) if "Laptop T14" in m["text"]]
        assert not has_buttons(message) and message["updated"] >= 1
        assert "Approved" in blocks_text(message) and f"<@{BOB}>" in blocks_text(message)
    # The run goes on first; the notices follow.
    await eventually(lambda: any("Approved" in t for t in texts_in(bot, "#approvals-bots")))

    # A later click is told it is decided, by whom; nothing changes.
    late = await bot.driver.click(CAROL, to_carol, "approval:Reject")
    assert late.ok
    answer = await eventually(lambda: [t for t in response_texts(bot, CAROL) if "already" in t])
    assert "Approved" in answer[0] or "approved" in answer[0].lower()
    record = await approval_of(bot, run.id)
    assert record.outcome == "approved" and len(record.responses) == 1
    # The requester is not bothered with an approval.
    assert not [m for m in bot.emulator.messages_in(ALICE) if "Your request" in m["text"]]


async def ask_for_laptop(
    bot: BotHarness, command: str, approver: str, title: str
) -> tuple[FlowRecord, JSON]:
    """Alice makes the Laptop flow and types `/flow command`: the approval DM titled `title`
    to `approver`, once the run waits for the decision."""
    flow = await create_flow(bot, FIRST)
    await bot.driver.slash(ALICE, command)
    message = await approval_dm(bot, approver, title)
    await waiting_run(bot, flow.id)
    return flow, message


async def test_reject_with_a_comment_from_the_modal_tells_the_requester(bot: BotHarness) -> None:
    flow, to_carol = await ask_for_laptop(bot, "run Laptop", CAROL, "Laptop X1")
    view, submitted = await comment_on(bot, CAROL, to_carol, "Reject", "Too expensive <!channel>")
    assert submitted.ok and view["id"] not in bot.emulator.views
    [run] = await finished_run(bot, flow.id)
    out = run.steps["ask"].output
    assert (out["outcome"], out["responder"]) == ("rejected", CAROL)
    assert out["comment"] == "Too expensive <!channel>"
    assert out["responses"][0]["comment"] == "Too expensive <!channel>"
    assert texts_in(bot, "#general")[-1] == f"rejected by {CAROL}: Too expensive <!channel>"

    # Both messages show the outcome and the (escaped) comment: they are updated once the
    # run has gone on (SPEC 16: the run first, the messages after).
    for user in (BOB, CAROL):

        def decided_message(user: str = user) -> list[dict[str, Any]]:
            return [
                m
                for m in bot.emulator.messages_in(user)
                if "Laptop X1" in m["text"] and not has_buttons(m)
            ]

        [message] = await eventually(decided_message)
        shown = blocks_text(message)
        assert "Rejected" in shown
        assert "Too expensive &lt;!channel&gt;" in shown and "<!channel>" not in shown
    # The requester hears of the rejection, with the comment.
    told = await eventually(
        lambda: [m for m in bot.emulator.messages_in(ALICE) if "Your request" in m["text"]]
    )
    assert "Too expensive" in blocks_text(told[0]) and f"<@{CAROL}>" in blocks_text(told[0])
    assert await eventually(
        lambda: [t for t in texts_in(bot, "#approvals-bots") if "Rejected" in t]
    )


async def test_the_comment_button_refuses_non_approvers_without_a_modal(bot: BotHarness) -> None:
    _, to_bob = await ask_for_laptop(bot, "run Laptop", BOB, "Laptop X1")
    # Dave clicks a copy of Bob's message (a forwarded or shared view of it).
    assert (await bot.driver.click(DAVE, to_bob, "approval_comment")).ok
    await eventually(lambda: [t for t in response_texts(bot, DAVE) if "not an approver" in t])
    assert not [v for v in bot.emulator.views.values() if v["user"] == DAVE]


CUSTOM_IN_CHANNEL = """
name: Venue
steps:
  - id: ask
    type: approval
    approvers: ["<#C0FINANCE>"]
    channel: "#finance"
    title: "Pick the venue"
    options: ["Paris", "Rome", "Not this year"]
    approve_option: Rome
    allow_comment: false
  - {id: after, type: post_message, channel: "#general",
     text: "{{ steps.ask.outcome }}/{{ steps.ask.option }}/{{ steps.ask.responder }}"}
"""


async def test_custom_options_in_a_channel_only_approvers_count(bot: BotHarness) -> None:
    flow = await create_flow(bot, CUSTOM_IN_CHANNEL)
    await bot.driver.slash(ALICE, "run Venue")

    def posted() -> JSON | None:
        found = [m for m in bot.emulator.messages_in("C0FINANCE") if has_buttons(m)]
        return found[0] if found else None

    post = copy.deepcopy(await eventually(posted))
    run = await waiting_run(bot, flow.id)
    # One post in the channel, no DMs; the approvers are the channel's members.
    assert not [m for m in bot.emulator.messages_in(BOB) if "venue" in m["text"]]
    assert "approval_comment" not in blocks_text(post)
    assert [b["text"]["text"] for b in buttons_of(post)] == ["Paris", "Rome", "Not this year"]
    record = await approval_of(bot, run.id)
    assert sorted(record.approvers) == sorted([ALICE, BOB])

    # Carol is not in #finance: her click is refused and changes nothing.
    assert (await bot.driver.click(CAROL, post, "approval:Rome")).ok
    await eventually(lambda: [t for t in response_texts(bot, CAROL) if "not an approver" in t])
    record = await approval_of(bot, run.id)
    assert record.pending and record.responses == [] and record.version == 0
    assert (await runs_of(bot, flow.id))[0].status == "waiting"

    assert (await bot.driver.click(BOB, post, "approval:Paris")).ok
    [run] = await finished_run(bot, flow.id)
    assert texts_in(bot, "#general")[-1] == f"rejected/Paris/{BOB}"
    [message] = [m for m in bot.emulator.messages_in("C0FINANCE") if "venue" in m["text"]]
    assert not has_buttons(message) and "(Paris)" in blocks_text(message)


async def _count_pending(bot: BotHarness, user: str, count: int) -> bool:
    return len(await bot.flowbot.deps.approvals.pending_for(TEAM, user)) == count


async def test_flow_approvals_lists_mine_with_buttons_that_work(bot: BotHarness) -> None:
    flow = await create_flow(bot, FIRST)
    await bot.driver.slash(ALICE, "run Laptop model=A")
    await bot.driver.slash(ALICE, "run Laptop model=B")
    await approval_dm(bot, BOB, "Laptop A")
    await approval_dm(bot, BOB, "Laptop B")
    # A request is listed once every approver's DM has gone out.
    await eventually(
        lambda: _count_pending(bot, BOB, 2),
    )

    response = await bot.driver.slash(BOB, "approvals")
    assert response.ok
    listing = await eventually(lambda: bot.emulator.last_ephemeral(BOB))
    shown = blocks_text(listing)
    assert "Laptop A" in shown and "Laptop B" in shown and "2 approvals" in shown

    # Approve B from the list (an ephemeral message).
    records = [await approval_of(bot, r.id) for r in await runs_of(bot, flow.id)]
    b = next(r for r in records if r.title == "Laptop B")
    assert (await bot.driver.click(BOB, listing, "approval:Approve", value=b.id)).ok
    await eventually(lambda: [t for t in texts_in(bot, "#general") if t == f"approved by {BOB}: "])

    await bot.driver.slash(DAVE, "approvals")
    nothing = await eventually(lambda: bot.emulator.last_ephemeral(DAVE))
    assert "No approvals are waiting for you" in nothing["text"]
    before = len(bot.emulator.ephemerals)
    await bot.driver.slash(BOB, "approvals")
    again = await eventually(
        lambda: [
            e
            for e in bot.emulator.ephemerals[before:]
            if e["user"] == BOB and "waiting for you" in e["text"]
        ]
    )
    assert "Laptop A" in blocks_text(again[0]) and "Laptop B" not in blocks_text(again[0])
    assert "1 approval waiting for you" in again[0]["text"]


async def test_app_home_shows_my_pending_approvals(bot: BotHarness) -> None:
    flow, _ = await ask_for_laptop(bot, "run Laptop model=Z", CAROL, "Laptop Z")
    await bot.driver.event(bot.driver.app_home_opened(CAROL))
    home = await eventually(lambda: bot.emulator.home_views.get(CAROL))
    assert "Pending approvals" in blocks_text(home) and "Laptop Z" in blocks_text(home)
    assert (await bot.driver.click_home(CAROL, "approval:Approve")).ok
    await finished_run(bot, flow.id)

    # Decided: the home tab is refreshed without it.
    await eventually(lambda: "Laptop Z" not in blocks_text(bot.emulator.home_views[CAROL]))
