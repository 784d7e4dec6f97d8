"""Sharing end to end over signed requests: share / unshare / users / audit, telling the
recipients, My buttons on the App Home, links with Request access, the creation policy."""

from __future__ import annotations

import asyncio

from cards import sharing as cards
from flows.records import FlowRecord
from tests.support import (
    ADMIN,
    ALICE,
    BOB,
    CAROL,
    DAVE,
    INSTANT,
    JSON,
    SCHEDULED,
    TEAM,
    BotHarness,
    all_text,
    buttons_of,
    channel_mention,
    create_flow,
    deps,
    dms,
    eventually,
    first_reply,
    group_mention,
    has_buttons,
    settle,
    user_mention,
    values_of,
    wait_dm,
)

ERIN = "U0ERIN"


def shares_of(flow: FlowRecord) -> dict[str, str]:
    return {s.principal: s.role for s in flow.shares}


async def reload(bot: BotHarness, flow: FlowRecord) -> FlowRecord | None:
    return await deps(bot).sharing.flows.get(TEAM, flow.id)


async def test_share_defaults_tells_recipients_and_is_audited(bot: BotHarness) -> None:
    flow = await create_flow(bot, INSTANT)
    await create_flow(bot, SCHEDULED)
    answer = await first_reply(
        bot, ALICE, f"share Expenses {user_mention(BOB)} {group_mention('S0LEADS')}"
    )
    assert "run-only" in all_text(answer)
    saved = await reload(bot, flow)
    assert saved is not None and shares_of(saved) == {BOB: "runner", "S0LEADS": "runner"}
    assert saved.version == flow.version  # sharing is not a new definition version
    # BOB is named and is in the group: told once.
    dm = await wait_dm(bot, BOB, "shared the button")
    assert "Add to my buttons" in all_text(dm)
    await settle(0.2)
    assert len(dms(bot, BOB, "shared the button")) == 1
    # A scheduled flow defaults to co-owners; run-only is refused for it.
    answer = await first_reply(bot, ALICE, f"share Nightly {user_mention(CAROL)}")
    assert "co-owner" in all_text(answer)
    dm = await wait_dm(bot, CAROL, "co-owner")
    assert "Add to my buttons" not in all_text(dm)
    refusal = await first_reply(bot, ALICE, f"share Nightly {user_mention(DAVE)} as runner")
    assert "instant flows" in all_text(refusal)
    nightly = await deps(bot).sharing.find(TEAM, "Nightly")
    assert DAVE not in shares_of(nightly)
    # Re-sharing with another role changes it; the audit trail has every change.
    await first_reply(bot, ALICE, f"share Expenses {user_mention(BOB)} as owner")
    entries = await bot.db["sharing_audit"].find({"flow_id": flow.id}).to_list(None)
    kinds = sorted((e["kind"], e["principal"], e["role"]) for e in entries)
    assert kinds == [
        ("role_changed", BOB, "owner"),
        ("shared", "S0LEADS", "runner"),
        ("shared", BOB, "runner"),
    ]
    assert all(e["actor"] == ALICE and e["at"] for e in entries)
    audit = await first_reply(bot, BOB, "audit Expenses")
    text = all_text(audit)
    assert "Sharing history of Expenses" in text and "(was run-only)" in text


async def test_a_channel_share_posts_once_in_the_channel(bot: BotHarness) -> None:
    flow = await create_flow(bot, INSTANT)
    before = len(bot.emulator.messages_in("C0FINANCE"))
    await first_reply(bot, ALICE, f"share Expenses {channel_mention('C0FINANCE')}")
    posts = await eventually(lambda: bot.emulator.messages_in("C0FINANCE")[before:])
    assert len(posts) == 1 and "this channel" in all_text(posts[0])
    # A member adds it from the channel post; the button works for members only.
    await bot.driver.click(BOB, posts[0], cards.ADD_BUTTON_ACTION)
    assert await eventually(lambda: _is(bot, BOB, flow.id, "added"))
    await bot.driver.click(DAVE, posts[0], cards.ADD_BUTTON_ACTION)
    refusal = await eventually(lambda: bot.emulator.last_ephemeral(DAVE))
    assert "not shared with you" in all_text(refusal)
    assert await _status(bot, DAVE, flow.id) is None


async def _status(bot: BotHarness, user: str, flow_id: str) -> str | None:
    doc = await bot.db["my_buttons"].find_one({"user_id": user, "flow_id": flow_id})
    return str(doc["status"]) if doc else None


async def test_bad_arguments_get_the_usage_line_and_change_nothing(bot: BotHarness) -> None:
    flow = await create_flow(bot, INSTANT)
    for text in (
        "share",
        "share Expenses",
        "share Expenses @bob",
        f"share Expenses {user_mention(BOB)} as boss",
        f"share Nope {user_mention(BOB)}",
        "unshare Expenses",
        "users",
    ):
        answer = await first_reply(bot, ALICE, text)
        assert "Usage" in all_text(answer), text
    saved = await reload(bot, flow)
    assert saved is not None and saved.shares == []
    # Someone with no access is told the flow does not exist (names don't leak).
    answer = await first_reply(bot, DAVE, f"share Expenses {user_mention(DAVE)}")
    assert "no flow named" in all_text(answer)


async def test_users_lists_roles_through_groups_and_remove_updates_at_once(
    bot: BotHarness,
) -> None:
    flow = await create_flow(bot, INSTANT)
    await deps(bot).sharing.share(TEAM, ALICE, "Expenses", ["S0LEADS"], "owner")
    await deps(bot).sharing.share(TEAM, ALICE, "Expenses", [CAROL, "C0FINANCE"], "runner")
    listing = await first_reply(bot, BOB, "users Expenses")
    text = all_text(listing)
    assert "<@U0ALICE> — *creator*" in text
    assert "<!subteam^S0LEADS> (user group) — *co-owner*" in text
    assert "through it: <@U0BOB>" in text
    assert "<@U0CAROL> — *run-only*" in text and "<#C0FINANCE> (channel members)" in text
    assert "Recent changes" in text
    removable = values_of(listing, cards.REMOVE_SHARE_ACTION)
    assert sorted(v.split(" ")[1] for v in removable) == ["C0FINANCE", "S0LEADS", "U0CAROL"]
    # BOB (co-owner through the group) removes CAROL: the same message updates at once.
    await bot.driver.click(BOB, listing, cards.REMOVE_SHARE_ACTION, f"{flow.id} {CAROL}")
    await eventually(lambda: listing["updated"] > 0)
    assert "<@U0CAROL>" not in all_text(listing).split("Recent changes")[0]
    assert "removed <@U0CAROL>" in all_text(listing)
    saved = await reload(bot, flow)
    assert saved is not None and CAROL not in shares_of(saved)
    # A run-only user or a stranger can't see the list.
    refusal = await first_reply(bot, CAROL, "users Expenses")
    assert "no flow named" in all_text(refusal)
    await deps(bot).sharing.share(TEAM, ALICE, "Expenses", [DAVE], "runner")
    refusal = await first_reply(bot, DAVE, "users Expenses")
    assert "Only the owners" in all_text(refusal)


async def test_my_buttons_banner_add_run_remove_and_add_back(bot: BotHarness) -> None:
    flow = await create_flow(bot, INSTANT)
    await bot.driver.event(bot.driver.app_home_opened(CAROL))
    home = await eventually(lambda: bot.emulator.home_views.get(CAROL))
    assert "new button" not in all_text(home)
    await first_reply(bot, ALICE, f"share Expenses {user_mention(CAROL)}")
    dm = await wait_dm(bot, CAROL, "shared the button")
    await bot.driver.event(bot.driver.app_home_opened(CAROL))
    await eventually(lambda: "1 new button is available" in all_text(home))
    # Add from the DM.
    await bot.driver.click(CAROL, dm, cards.ADD_BUTTON_ACTION)
    assert await eventually(lambda: _is(bot, CAROL, flow.id, "added"))
    await bot.driver.event(bot.driver.app_home_opened(CAROL))
    await eventually(lambda: "new button" not in all_text(home))
    blocks_text = all_text(home)
    assert "Expenses" in blocks_text and "run-only" in blocks_text
    # Run it from My buttons (the runs area's Run action).
    await bot.driver.click_home(CAROL, "run_flow", flow.id)

    async def carol_runs() -> int:
        return int(await bot.db["runs"].count_documents({"started_by": CAROL}))

    assert await eventually(carol_runs) == 1
    # Remove it from My buttons (the Home tab refreshes), then add it back.
    await bot.driver.click_home(CAROL, cards.REMOVE_BUTTON_ACTION, flow.id)
    assert await eventually(lambda: _is(bot, CAROL, flow.id, "removed"))
    await eventually(lambda: "removed from My buttons" in all_text(home))
    listing = await first_reply(bot, CAROL, "buttons")
    assert "removed from My buttons" in all_text(listing)
    await bot.driver.click_home(CAROL, cards.ADD_BUTTON_ACTION, flow.id)
    assert await eventually(lambda: _is(bot, CAROL, flow.id, "added"))
    await eventually(lambda: "removed from My buttons" not in all_text(home))
    # Unshared: it leaves My buttons even though it was added.
    await first_reply(bot, ALICE, f"unshare Expenses {user_mention(CAROL)}")
    listing = await first_reply(bot, CAROL, "buttons")
    assert "Expenses" not in all_text(listing)


async def _is(bot: BotHarness, user: str, flow_id: str, status: str) -> bool:
    return await _status(bot, user, flow_id) == status


async def test_link_request_access_approve_and_deny_round_trip(bot: BotHarness) -> None:
    flow = await create_flow(bot, INSTANT)
    await deps(bot).sharing.share(TEAM, ALICE, "Expenses", ["S0LEADS"], "owner")
    bot.emulator.add_user(ERIN, "erin")
    await first_reply(bot, BOB, "link Expenses")  # a co-owner shares a link
    link = await eventually(
        lambda: next(
            (m for m in bot.emulator.messages_in("C0GENERAL") if "shared a link" in all_text(m)),
            None,
        )
    )
    # DAVE may not run it: the link offers Request access (ephemeral), and grants nothing.
    await bot.driver.click(DAVE, link, cards.LINK_RUN_ACTION)
    offer = await eventually(lambda: bot.emulator.last_ephemeral(DAVE))
    assert "Request access" in all_text(offer)
    assert await bot.db["runs"].count_documents({}) == 0
    await bot.driver.click(DAVE, offer, cards.REQUEST_ACCESS_ACTION)
    await eventually(lambda: "Asked the owners" in all_text(offer))
    # Every owner (creator, and BOB through the group) is asked, with Approve / Deny.
    ask_alice = await wait_dm(bot, ALICE, "asks to run")
    ask_bob = await wait_dm(bot, BOB, "asks to run")
    # Asking again does not ask the owners twice.
    await bot.driver.click(DAVE, link, cards.LINK_RUN_ACTION)
    again = await eventually(
        lambda: [e for e in bot.emulator.ephemerals if e["user"] == DAVE][1:] or None
    )
    await bot.driver.click(DAVE, again[-1], cards.REQUEST_ACCESS_ACTION)
    await eventually(lambda: "already asked" in all_text(again[-1]))
    assert len(dms(bot, ALICE, "asks to run")) == 1
    # A stranger can't answer it.
    await bot.driver.click(CAROL, ask_alice, cards.APPROVE_ACTION)
    await settle()
    saved = await reload(bot, flow)
    assert saved is not None and DAVE not in shares_of(saved)
    # ALICE approves: DAVE becomes run-only and is told; BOB's copy shows the outcome.
    await bot.driver.click(ALICE, ask_alice, cards.APPROVE_ACTION)
    answer = await wait_dm(bot, DAVE, "approved your request")
    assert "Add to my buttons" in all_text(answer)
    saved = await reload(bot, flow)
    assert saved is not None and shares_of(saved)[DAVE] == "runner"
    await eventually(lambda: "Approved" in all_text(ask_bob))
    assert "Approve" not in [b["text"]["text"] for b in buttons_of(ask_bob)]
    # BOB's late click (from a copy not refreshed yet) changes nothing.
    request = await bot.db["access_requests"].find_one({"requester": DAVE})
    assert request is not None and request["status"] == "approved"
    await bot.driver.block_action(BOB, cards.DENY_ACTION, request["_id"], message=ask_bob)
    await eventually(lambda: "already answered" in all_text(bot.emulator.last_ephemeral(BOB) or {}))
    assert shares_of(await deps(bot).sharing.find(TEAM, flow.id))[DAVE] == "runner"
    # Now the link runs the flow for DAVE.
    await bot.driver.click(DAVE, link, cards.LINK_RUN_ACTION)

    async def dave_runs() -> int:
        return int(await bot.db["runs"].count_documents({"started_by": DAVE}))

    assert await eventually(dave_runs) == 1
    # ERIN asks and BOB denies: she is told, and nothing is shared.
    await bot.driver.click(ERIN, link, cards.LINK_RUN_ACTION)
    offer = await eventually(lambda: bot.emulator.last_ephemeral(ERIN))
    await bot.driver.click(ERIN, offer, cards.REQUEST_ACCESS_ACTION)
    ask = await eventually(lambda: _ask_for(bot, BOB, ERIN))
    await bot.driver.click(BOB, ask, cards.DENY_ACTION)
    await wait_dm(bot, ERIN, "denied your request")
    assert ERIN not in shares_of(await deps(bot).sharing.find(TEAM, flow.id))
    kinds = [
        e["kind"] async for e in bot.db["sharing_audit"].find({"flow_id": flow.id}).sort("at", 1)
    ]
    assert kinds.count("access_requested") == 2
    assert "access_approved" in kinds and "access_denied" in kinds


def _ask_for(bot: BotHarness, owner: str, requester: str) -> JSON | None:
    hits = [m for m in dms(bot, owner, f"<@{requester}> asks to run") if has_buttons(m)]
    return hits[-1] if hits else None


async def test_run_history_owners_see_all_runs_runners_their_own(bot: BotHarness) -> None:
    await create_flow(bot, INSTANT)
    await deps(bot).sharing.share(TEAM, ALICE, "Expenses", [CAROL], "runner")
    await deps(bot).sharing.share(TEAM, ALICE, "Expenses", [BOB], "owner")
    for user in (ALICE, CAROL, BOB):
        await first_reply(bot, user, "run Expenses")

    async def finished() -> bool:
        return await bot.db["runs"].count_documents({"status": "succeeded"}) == 3

    assert await eventually(finished, timeout=15)
    owner_view = all_text(await first_reply(bot, BOB, "history Expenses"))
    assert all(f"<@{u}>" in owner_view for u in (ALICE, BOB, CAROL))
    runner_view = all_text(await first_reply(bot, CAROL, "history Expenses"))
    assert "Your runs" in runner_view and "<@U0CAROL>" in runner_view
    assert "<@U0ALICE>" not in runner_view and "<@U0BOB>" not in runner_view
    refusal = all_text(await first_reply(bot, DAVE, "history Expenses"))
    assert "<@U0CAROL>" not in refusal


async def test_admins_restrict_who_may_create_flows(bot: BotHarness) -> None:
    refusal = await first_reply(bot, ALICE, f"admin creators {user_mention(ALICE)}")
    assert "Only workspace admins" in all_text(refusal)
    answer = await first_reply(
        bot, ADMIN, f"admin creators {user_mention(ALICE)} {group_mention('S0LEADS')}"
    )
    assert "Only <@U0ALICE>, <!subteam^S0LEADS>" in all_text(answer)
    await create_flow(bot, INSTANT, ALICE)  # listed
    await create_flow(bot, SCHEDULED, BOB)  # through the group
    # CAROL is refused, through the real editor, and told whom to ask.
    await bot.driver.slash(CAROL, "import")
    view = await eventually(
        lambda: next((v for v in bot.emulator.views.values() if v.get("user") == CAROL), None)
    )
    text = INSTANT.replace("Expenses", "Carol's flow")
    response = await bot.driver.fill_and_submit(CAROL, view["id"], {"definition": text})
    errors = (response.json or {}).get("errors") or {}
    message = " ".join(errors.values())
    assert "Ask a workspace admin" in message and "<@U0ADMIN>" in message
    assert await bot.db["flows"].count_documents({"creator": CAROL}) == 0
    shown = await first_reply(bot, CAROL, "admin creators")
    assert "may create flows" in all_text(shown)
    await first_reply(bot, ADMIN, "admin creators everyone")
    await create_flow(bot, text, CAROL)
    assert await bot.db["flows"].count_documents({"creator": CAROL}) == 1
    audit = await bot.db["sharing_audit"].find({"kind": "creators_changed"}).to_list(None)
    assert len(audit) == 2 and audit[-1]["detail"].endswith("→ everyone")


async def test_losing_a_group_loses_the_button_and_the_run(bot: BotHarness) -> None:
    """Membership is read from Slack (cached 30 s): once invalidated, access is gone."""
    flow = await create_flow(bot, INSTANT)
    await deps(bot).sharing.share(TEAM, ALICE, "Expenses", ["S0LEADS"], "runner")
    await wait_dm(bot, BOB, "through <!subteam^S0LEADS>")
    assert len((await deps(bot).sharing.my_buttons(TEAM, BOB)).new) == 1
    bot.emulator.set_usergroup_users("S0LEADS", [])
    bot.flowbot.deps.directory.invalidate()  # type: ignore[attr-defined]
    assert (await deps(bot).sharing.my_buttons(TEAM, BOB)).new == []
    answer = await first_reply(bot, BOB, "run Expenses")
    assert ":warning:" in all_text(answer)
    assert dms(bot, DAVE, "shared the button") == []
    assert flow.id


async def test_concurrent_shares_and_unshares_lose_nothing(bot: BotHarness) -> None:
    """The sharing list is compare-and-swapped: racing changes all land."""
    flow = await create_flow(bot, INSTANT)
    users = [f"U0RACE{i}" for i in range(6)]
    await asyncio.gather(
        *(deps(bot).sharing.share(TEAM, ALICE, "Expenses", [user], "runner") for user in users)
    )
    saved = await reload(bot, flow)
    assert saved is not None and sorted(shares_of(saved)) == users
    await asyncio.gather(
        deps(bot).sharing.unshare(TEAM, ALICE, "Expenses", users[:3]),
        deps(bot).sharing.share(TEAM, ALICE, "Expenses", [CAROL], "owner"),
    )
    saved = await reload(bot, flow)
    assert saved is not None and sorted(shares_of(saved)) == sorted([*users[3:], CAROL])
    assert await bot.db["sharing_audit"].count_documents({"flow_id": flow.id}) == 10
