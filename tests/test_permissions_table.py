"""Every cell of SPEC §4's table, exercised with real signed requests.

Roles: ALICE created the flows; BOB is a co-owner through the user group S0LEADS; CAROL is
run-only (and has a stale run-only share on the scheduled flow, which grants nothing);
ADMIN is a workspace admin with no share; DAVE is anyone else. An allowed action
happens; a denied one gets an ephemeral refusal and changes nothing.
"""

from __future__ import annotations

from datetime import datetime, timezone

import pytest

from cards import flows as flow_cards
from flows.records import RunTrigger, Share
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
    create_connection,
    create_flow,
    deps,
    eventually,
    first_reply,
    flow_doc,
    group_mention,
    settle,
    user_mention,
)

ERIN = "U0ERIN"
ROLES = {"creator": ALICE, "co-owner": BOB, "run-only": CAROL, "admin": ADMIN, "other": DAVE}
Y, N, OWN = True, False, "own"
# SPEC §4, as written: action → role → yes / no / "only their own runs' results".
TABLE: dict[str, dict[str, bool | str]] = {
    "run_instant": {"creator": Y, "co-owner": Y, "run-only": Y, "admin": N, "other": N},
    "run_scheduled": {"creator": Y, "co-owner": Y, "run-only": N, "admin": N, "other": N},
    "edit": {"creator": Y, "co-owner": Y, "run-only": N, "admin": N, "other": N},
    "history": {"creator": Y, "co-owner": Y, "run-only": OWN, "admin": N, "other": N},
    "manage_sharing": {"creator": Y, "co-owner": Y, "run-only": N, "admin": Y, "other": N},
    "connections": {"creator": Y, "co-owner": Y, "run-only": N, "admin": N, "other": N},
    "delete": {"creator": Y, "co-owner": Y, "run-only": N, "admin": N, "other": N},
    "share_link": {"creator": Y, "co-owner": Y, "run-only": Y, "admin": N, "other": N},
}
CELLS = [(action, role) for action in TABLE for role in ROLES]

LEDGER = """
name: Ledger
kind: instant
connections: [{slot: ledger, kind: http_bearer}]
steps:
  - {type: http_request, connection: ledger, method: GET, path: /status}
"""


async def setup_flows(bot: BotHarness) -> None:
    service = deps(bot).sharing
    for text in (INSTANT, SCHEDULED, LEDGER):
        await create_flow(bot, text)
    for name in ("Expenses", "Nightly", "Ledger"):
        await service.share(TEAM, ALICE, name, ["S0LEADS"], "owner")
    for name in ("Expenses", "Ledger"):
        await service.share(TEAM, ALICE, name, [CAROL], "runner")
    # A run-only share left on a scheduled flow grants nothing (planted in the store:
    # the service itself refuses to make one).
    nightly = await service.find(TEAM, "Nightly")
    stale = Share(
        principal=CAROL, role="runner", added_by=ALICE, added_at=datetime.now(timezone.utc)
    )
    saved = await service.flows.set_shares(
        TEAM, nightly.id, [*nightly.shares, stale], nightly.shares
    )
    assert saved is not None


async def run_count(bot: BotHarness, name: str, user: str) -> int:
    flow = await flow_doc(bot, name)
    assert flow is not None
    return int(await bot.db["runs"].count_documents({"flow_id": flow["_id"], "started_by": user}))


def refused(answer: JSON) -> bool:
    return ":warning:" in all_text(answer)


async def cell_run(bot: BotHarness, user: str, name: str) -> bool:
    answer = await first_reply(bot, user, f"run {name}")
    if refused(answer):
        await settle()
        assert await run_count(bot, name, user) == 0
        return False
    assert await eventually(lambda: run_count(bot, name, user)) == 1
    return True


async def cell_edit(bot: BotHarness, user: str) -> bool:
    answer = await first_reply(bot, user, "off Expenses")
    flow = await flow_doc(bot, "Expenses")
    assert flow is not None
    if refused(answer):
        assert flow["enabled"] is True
        return False
    assert flow["enabled"] is False
    answer = await first_reply(bot, user, "on Expenses")
    assert not refused(answer)
    return True


async def cell_history(bot: BotHarness, user: str) -> bool | str:
    service, runner = deps(bot).sharing, deps(bot).runner
    flow = await service.find(TEAM, "Expenses")
    for starter in (ALICE, CAROL):
        await runner.start_run(flow, RunTrigger(type="manual", user=starter))

    async def finished() -> bool:
        return (
            await bot.db["runs"].count_documents(
                {"flow_id": flow.id, "status": {"$in": ["succeeded", "failed"]}}
            )
            == 2
        )

    assert await eventually(finished)
    answer = await first_reply(bot, user, "history Expenses")
    text = all_text(answer)
    if refused(answer):
        assert "<@U0ALICE>" not in text.replace("Expense filed by", "")
        return False
    sees_alice, sees_carol = "<@U0ALICE>" in text, "<@U0CAROL>" in text
    if sees_alice and sees_carol:
        return True
    assert sees_carol and not sees_alice and user == CAROL, text
    return OWN


async def cell_manage_sharing(bot: BotHarness, user: str) -> bool:
    add = await first_reply(bot, user, f"share Expenses {user_mention(ERIN)}")
    remove = await first_reply(bot, user, f"unshare Expenses {user_mention(CAROL)}")
    flow = await flow_doc(bot, "Expenses")
    assert flow is not None
    principals = {s["principal"] for s in flow["shares"]}
    if refused(add):
        assert refused(remove)
        assert ERIN not in principals and CAROL in principals
        audit = await bot.db["sharing_audit"].count_documents({"actor": user})
        assert audit == 0
        return False
    assert ERIN in principals and CAROL not in principals
    return True


async def cell_connections(bot: BotHarness, user: str) -> bool:
    await create_connection(bot, user, "mine", "https://api.example.com", "s3cret-token-value")
    answer = await first_reply(bot, user, "connect Ledger ledger mine")
    flow = await flow_doc(bot, "Ledger")
    assert flow is not None
    bound = [b for b in flow.get("bindings", []) if b.get("connection_id")]
    if refused(answer):
        assert not bound
        return False
    assert bound and bound[0]["added_by"] == user
    return True


async def cell_delete(bot: BotHarness, user: str) -> bool:
    answer = await first_reply(bot, user, "delete Expenses")
    if refused(answer):
        await settle()
        assert await flow_doc(bot, "Expenses") is not None
        return False
    await bot.driver.click(user, answer, flow_cards.DELETE_CONFIRM_ACTION)

    async def gone() -> bool:
        return await flow_doc(bot, "Expenses") is None

    assert await eventually(gone)
    return True


async def cell_share_link(bot: BotHarness, user: str) -> bool:
    before = len(bot.emulator.messages_in("C0GENERAL"))
    answer = await first_reply(bot, user, "link Expenses")
    if refused(answer):
        await settle()
        assert len(bot.emulator.messages_in("C0GENERAL")) == before
        return False
    posted = bot.emulator.messages_in("C0GENERAL")[before:]
    assert any("shared a link" in all_text(m) for m in posted)
    return True


@pytest.mark.parametrize(("action", "role"), CELLS, ids=[f"{a}-{r}" for a, r in CELLS])
async def test_every_cell_of_the_permission_table(bot: BotHarness, action: str, role: str) -> None:
    bot.emulator.add_user(ERIN, "erin")
    await setup_flows(bot)
    user = ROLES[role]
    if action == "run_instant":
        got: bool | str = await cell_run(bot, user, "Expenses")
    elif action == "run_scheduled":
        got = await cell_run(bot, user, "Nightly")
    elif action == "edit":
        got = await cell_edit(bot, user)
    elif action == "history":
        got = await cell_history(bot, user)
    elif action == "manage_sharing":
        got = await cell_manage_sharing(bot, user)
    elif action == "connections":
        got = await cell_connections(bot, user)
    elif action == "delete":
        got = await cell_delete(bot, user)
    else:
        got = await cell_share_link(bot, user)
    assert got == TABLE[action][role]


async def test_an_admin_may_add_themselves_as_owner_and_then_acts_as_one(
    bot: BotHarness,
) -> None:
    await setup_flows(bot)
    refusal = await first_reply(bot, ADMIN, "off Expenses")
    assert refused(refusal)
    answer = await first_reply(bot, ADMIN, f"share Expenses {user_mention(ADMIN)} as owner")
    assert "co-owner" in all_text(answer) and not refused(answer)
    assert not refused(await first_reply(bot, ADMIN, "off Expenses"))
    flow = await flow_doc(bot, "Expenses")
    assert flow is not None and flow["enabled"] is False


async def test_nobody_can_remove_the_creator(bot: BotHarness) -> None:
    await setup_flows(bot)
    for user in (BOB, ADMIN, ALICE):
        answer = await first_reply(bot, user, f"unshare Expenses {user_mention(ALICE)}")
        assert "creator" in all_text(answer)
    answer = await first_reply(bot, BOB, f"share Expenses {user_mention(ALICE)} as runner")
    assert "creator" in all_text(answer)
    flow = await flow_doc(bot, "Expenses")
    assert flow is not None and flow["creator"] == ALICE
    assert ALICE not in {s["principal"] for s in flow["shares"]}
    assert await bot.db["sharing_audit"].count_documents({"principal": ALICE}) == 0
    # The creator still does everything an owner does.
    assert not refused(await first_reply(bot, ALICE, "off Expenses"))


async def test_removing_someone_from_an_owner_group_removes_their_access(
    bot: BotHarness,
) -> None:
    await setup_flows(bot)
    assert not refused(await first_reply(bot, BOB, "off Expenses"))
    bot.emulator.set_usergroup_users("S0LEADS", [DAVE])
    bot.flowbot.deps.directory.invalidate()  # type: ignore[attr-defined]  # the 30 s cache
    answer = await first_reply(bot, BOB, "on Expenses")
    assert refused(answer)
    flow = await flow_doc(bot, "Expenses")
    assert flow is not None and flow["enabled"] is False
    # …and the group's new member is a co-owner now.
    assert not refused(await first_reply(bot, DAVE, "on Expenses"))
    listing = await first_reply(bot, ALICE, "users Expenses")
    assert group_mention("S0LEADS").split("|")[0] in all_text(listing)
    assert "<@U0DAVE>" in all_text(listing)
