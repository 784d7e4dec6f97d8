"""SPEC §9 end to end, as three colleagues would use it: every subcommand in a realistic
order, clicking the buttons and filling the modals they see (found by their labels), with
each answer checked to read well. Then Slack's retries and double clicks."""

from __future__ import annotations

import copy
import json
import re
from urllib.parse import urlencode

from emulator.driver import FORM, VERIFICATION_TOKEN, DriverResponse
from emulator.server import texts
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    DAVE,
    JSON,
    TEAM,
    BotHarness,
    answer_text,
    button,
    buttons_of,
    by_label,
    create_flow,
    dms,
    eventually,
    finished_run,
    reads_well,
    runs_of,
    settle,
    slash,
    template_source,
    wait_dm,
    wait_ephemeral,
)

MANAGER = "U0MANAGER"
E = '"Expense approval"'
LEDGER_TOKEN = "ledger-secret-token-5f1e9a"
LUNCH = """
name: Lunch order
kind: instant
steps:
  - type: post_message
    channel: "#general"
    text: "Lunch is ordered by <@{{ run.started_by }}>"
"""


# ------------------------------------------------------------------ what a person does


async def click(bot: BotHarness, user: str, message: JSON, label: str) -> DriverResponse:
    element = button(message, label)
    response = await bot.driver.click(user, message, element["action_id"], element.get("value"))
    assert response.status == 200 and not response.timed_out, response
    return response


async def click_in_view(bot: BotHarness, user: str, view: JSON, label: str) -> DriverResponse:
    element = button(view, label)
    response = await bot.driver.click_in_view(
        user, view["id"], element["action_id"], element.get("value")
    )
    assert response.status == 200 and not response.timed_out, response
    return response


async def modal(bot: BotHarness, user: str, title: str | None = None, *, new: bool = True) -> JSON:
    """The modal on top of `user`'s screen (`new`: one opened since the last call)."""

    def top() -> JSON | None:
        for view in reversed(list(bot.emulator.views.values())):
            if new and (id(bot.emulator), view["id"], view["hash"]) in _SEEN:
                continue
            if view.get("user") == user and view["stack"][-1] == view["id"]:
                if title is None or (view.get("title") or {}).get("text") == title:
                    return view
        return None

    found: JSON = await eventually(top)
    _SEEN.add((id(bot.emulator), found["id"], found["hash"]))
    return found


_SEEN: set[tuple[int, str, str]] = set()  # (emulator, view id, hash) already looked at


async def submit(bot: BotHarness, user: str, view: JSON, values: dict[str, str]) -> DriverResponse:
    response = await bot.driver.fill_and_submit(user, view["id"], by_label(view, values))
    assert response.ok and not response.timed_out, (response, response.text)
    assert "errors" not in (response.json or {}), response.json
    return response


async def dm(bot: BotHarness, user: str, contains: str) -> JSON:
    """The latest DM to `user` containing `contains`; it must read well."""
    message = await wait_dm(bot, user, contains)
    reads_well(message)
    return message


async def said(bot: BotHarness, user: str, text: str, contains: str = "") -> str:
    """`/flow text`: its first answer must read well (and contain `contains`)."""
    answer = await slash(bot, user, text, settle=0.05)
    shown = reads_well(answer.ephemerals[0])
    assert "Usage:" not in shown, (text, shown)
    assert contains in shown, (text, contains, shown)
    return shown


async def ephemeral(bot: BotHarness, user: str, contains: str, since: int = 0) -> JSON:
    """The latest ephemeral message to `user` containing `contains`; it must read well."""
    message = await wait_ephemeral(bot, user, contains, since, text_of=answer_text)
    reads_well(message)
    return message


# ------------------------------------------------------------------ the journey


async def test_three_colleagues_use_every_subcommand(
    http_bot: BotHarness, ledger: tuple[str, list[JSON]]
) -> None:
    bot = http_bot
    url, seen = ledger
    emulator = bot.emulator

    # Alice discovers the bot.
    shown = await said(bot, ALICE, "help", "/flow run")
    for sub in ("list", "new", "import", "show", "share", "connect", "approvals", "delete"):
        assert f"/flow {sub}" in shown
    answer = await slash(bot, ALICE, "help run")
    assert "Usage: `/flow run <flow> [key=value …]`" in reads_well(answer.ephemerals[0])
    await said(bot, ALICE, "list", "/flow new")

    # She creates the expense flow from the gallery, without changing the template.
    await slash(bot, ALICE, "new", expect=0, settle=0)
    gallery = await modal(bot, ALICE, "New flow")
    await submit(bot, ALICE, gallery, {"Start from": "Expense approval"})
    editor = await modal(bot, ALICE, "New flow")
    assert any("Expense approval" in t for t in texts(editor["blocks"]))
    await submit(bot, ALICE, editor, {})
    await ephemeral(bot, ALICE, "Created *Expense approval*")
    shown = await said(bot, ALICE, "list", "Expense approval")
    shown = await said(bot, ALICE, f"show {E}", "*Expense approval*")
    assert "`amount` (number, required)" in shown and "<@U0ALICE>" in shown

    # She edits it (a new version) and imports a second flow from a file she kept.
    await slash(bot, ALICE, f"edit {E}", expect=0, settle=0)
    editor = await modal(bot, ALICE, "Edit flow")
    [source] = [b["element"]["initial_value"] for b in editor["blocks"] if b.get("type") == "input"]
    edited = source.replace("Request approval for an expense", "Ask a lead to approve an expense")
    assert edited != source
    await submit(bot, ALICE, editor, {"Definition": edited})
    await ephemeral(bot, ALICE, "Saved *Expense approval* (version 2)")
    await slash(bot, ALICE, "import", expect=0, settle=0)
    importer = await modal(bot, ALICE, "Import a flow")
    await submit(bot, ALICE, importer, {"Definition": LUNCH})
    await ephemeral(bot, ALICE, "Created *Lunch order*")
    shown = await said(bot, ALICE, "list", "Lunch order")
    assert "*Expense approval* · instant · on · v2" in shown
    shown = await said(bot, ALICE, "run Lunch order", "Running *Lunch order*")
    await ephemeral(bot, ALICE, "Your run of *Lunch order* succeeded")

    # Her ledger token becomes a connection, attached to the flow's slot.
    await slash(bot, ALICE, "connect", expect=0, settle=0)
    connect = await modal(bot, ALICE)
    await submit(bot, ALICE, connect, {"Name": "Ledger", "Base URL": url, "Token": LEDGER_TOKEN})
    await ephemeral(bot, ALICE, "Saved *Ledger*")
    shown = await said(bot, ALICE, "connections", "Ledger")
    assert LEDGER_TOKEN not in shown
    shown = await said(bot, ALICE, f"connect {E} ledger Ledger", "now uses your connection")
    await slash(bot, ALICE, f"connections {E}", expect=0, settle=0)
    slots = await modal(bot, ALICE)
    assert any("Ledger" in t for t in texts(slots["blocks"]))
    assert LEDGER_TOKEN not in json.dumps(slots)

    # She asks for an expense; Bob (a lead) approves it from /flow approvals.
    flow_doc = await bot.db["flows"].find_one({"name_key": "expense approval"})
    assert flow_doc is not None
    flow_id = flow_doc["_id"]
    await said(bot, ALICE, f'run {E} amount=12 reason="team lunch"', "Running *Expense approval*")
    request = await dm(bot, BOB, "Expense 12 EUR")
    assert "team lunch, requested by <@U0ALICE>" in answer_text(request)
    await dm(bot, MANAGER, "Expense 12 EUR")
    # A request is listed once every approver's DM has gone out.
    await eventually(lambda: bot.flowbot.deps.approvals.pending_for(TEAM, BOB))
    listing = await slash(bot, BOB, "approvals", settle=0.05)
    pending = listing.ephemerals[0]
    assert "Expense 12 EUR" in reads_well(pending)
    await click(bot, BOB, pending, "Approve")
    [run] = await finished_run(bot, flow_id)
    assert run.status == "succeeded", run.error
    assert seen == [
        {"path": "/api/expenses", "auth": f"Bearer {LEDGER_TOKEN}", "json": {"amount": 12}}
    ]
    await ephemeral(bot, ALICE, "succeeded")
    assert not dms(bot, BOB, "Expense 12 EUR")[-1]["blocks"] or "Approved" in answer_text(
        dms(bot, BOB, "Expense 12 EUR")[-1]
    )
    await said(bot, BOB, "approvals", "No approvals")

    # The history, and the details of the run.
    since = len(emulator.ephemerals)
    await said(bot, ALICE, "history “Expense approval”", "succeeded")
    history = await ephemeral(bot, ALICE, "Last runs", since)
    await click(bot, ALICE, history, "Details")
    details = await modal(bot, ALICE)
    reads_well({"text": "details", "blocks": details["blocks"]})
    assert "team lunch" in "\n".join(texts(details["blocks"]))

    # Bob gets the button (run-only), adds it and runs it himself.
    shown = await said(bot, ALICE, f"share {E} <@U0BOB|bob>", "run-only")
    offer = await dm(bot, BOB, "shared the button Expense approval")
    since = len(emulator.ephemerals)
    await click(bot, BOB, offer, "Add to my buttons")
    await ephemeral(bot, BOB, "Expense approval", since)
    shown = await said(bot, BOB, "buttons", "Expense approval")
    assert "New — shared with you" not in shown
    # He runs it from his App Home: the Run flow form asks for the inputs.
    await bot.driver.event(bot.driver.app_home_opened(BOB))
    # The view with his button (an earlier refresh, of the pending lists, may land first).
    home = await eventually(
        lambda: (
            (view := emulator.home_views.get(BOB))
            and "Expense approval" in "\n".join(texts(view["blocks"]))
            and any((b.get("text") or {}).get("text") == "Run" for b in buttons_of(view))
            and view
        )
    )
    run_button = button(home, "Run")
    clicked = await bot.driver.click_home(BOB, run_button["action_id"], run_button.get("value"))
    assert clicked.ok and not clicked.timed_out
    form = await modal(bot, BOB, "Run flow")
    await submit(bot, BOB, form, {"Amount": "5", "Reason": "taxi"})
    mine = await dm(bot, BOB, "Expense 5 EUR")
    await click(bot, BOB, mine, "Approve")
    runs = await finished_run(bot, flow_id, 2)
    assert [r.status for r in runs] == ["succeeded", "succeeded"]
    shown = await said(bot, BOB, f"history {E}", "Expense approval")
    assert shown.count("<@U0BOB>") >= 1 and "<@U0ALICE>" not in shown

    # Carol becomes a co-owner and sees who has it.
    await said(bot, ALICE, f"share {E} <@U0CAROL|carol> as owner", "co-owner")
    await dm(bot, CAROL, "Expense approval")
    shown = await said(bot, CAROL, f"users {E}", "creator")
    assert "<@U0BOB> — *run-only*" in shown and "<@U0CAROL> — *co-owner*" in shown

    # A link in #general: Dave can't run it, asks, and Carol lets him in.
    await said(bot, ALICE, f"link {E} <#C0GENERAL|general>", "Posted a link")
    [link] = [m for m in emulator.messages_in("C0GENERAL") if "Expense approval" in m["text"]]
    reads_well(link)
    since = len(emulator.ephemerals)
    run_button = next(b for b in buttons_of(link) if "Request" not in b["text"]["text"])
    await click(bot, DAVE, link, run_button["text"]["text"])
    offer = await ephemeral(bot, DAVE, "Request access", since)
    await click(bot, DAVE, offer, "Request access")
    ask = await dm(bot, CAROL, "<@U0DAVE>")
    await dm(bot, ALICE, "<@U0DAVE>")
    await click(bot, CAROL, ask, "Approve")
    await dm(bot, DAVE, "Expense approval")
    shown = await said(bot, ALICE, f"users {E}", "<@U0DAVE>")

    # Bob loses the button; the flow goes off and on again.
    await said(bot, ALICE, f"unshare {E} <@U0BOB|bob>", "no longer shared")
    shown = await said(bot, BOB, f"run {E} amount=1 reason=x")
    assert "can't run" in shown
    await said(bot, CAROL, f"off {E}", "is off")
    assert "turned off" in await said(bot, DAVE, f"run {E} amount=1 reason=x")
    await said(bot, CAROL, f"on {E}", "is on")

    # Export: the definition, and never the secret.
    answer = await slash(bot, ALICE, f"export {E}", settle=0.2)
    exported = "\n".join(reads_well(e) for e in answer.ephemerals)
    assert "name: Expense approval" in exported and LEDGER_TOKEN not in exported
    await said(bot, ALICE, "approvals", "No approvals")

    # Delete, with a confirmation.
    answer = await slash(bot, ALICE, f"delete {E}", settle=0.05)
    question = answer.ephemerals[0]
    assert "cannot be undone" in reads_well(question)
    await click(bot, ALICE, question, "Delete")
    await ephemeral(bot, ALICE, "Deleted *Expense approval*")
    assert await bot.db["flows"].count_documents({"_id": flow_id}) == 0
    answer = await slash(bot, ALICE, f"show {E}")
    assert "no flow named" in reads_well(answer.ephemerals[0])
    shown = await said(bot, ALICE, "list", "Lunch order")
    assert "Expense approval" not in shown


# ------------------------------------------------------------------ retries and double clicks


def slash_form(bot: BotHarness, user: str, text: str) -> str:
    """The form Slack posts for `/flow text` (kept, so it can be delivered again)."""
    emulator = bot.emulator
    return urlencode(
        {
            "token": VERIFICATION_TOKEN,
            "team_id": TEAM,
            "team_domain": emulator.team_domain,
            "channel_id": "C0GENERAL",
            "channel_name": "general",
            "user_id": user,
            "user_name": emulator.users[user]["name"],
            "command": "/flow",
            "text": text,
            "api_app_id": emulator.app_id,
            "is_enterprise_install": "false",
            "response_url": emulator.new_response_url(user, "C0GENERAL"),
            "trigger_id": emulator.issue_trigger_id(user),
        }
    )


async def deliver(bot: BotHarness, form: str, retry: int | None = None) -> DriverResponse:
    headers = {"Content-Type": FORM, **bot.driver.sign(form)}
    if retry is not None:
        headers |= {"X-Slack-Retry-Num": str(retry), "X-Slack-Retry-Reason": "http_timeout"}
    response = await bot.driver.post_raw(form.encode(), headers)
    assert response.status == 200 and not response.timed_out, response
    return response


async def expense_flow(bot: BotHarness) -> str:
    return (await create_flow(bot, template_source("expense-approval"))).id


async def test_retried_commands_do_their_work_once(bot: BotHarness) -> None:
    flow_id = await expense_flow(bot)
    emulator = bot.emulator

    # A share delivered twice (Slack retried it): one share, one audit entry, one DM.
    form = slash_form(bot, ALICE, f"share {E} <@U0BOB|bob>")
    await deliver(bot, form)
    await deliver(bot, form, retry=1)
    await deliver(bot, form, retry=2)
    await ephemeral(bot, ALICE, "Shared *Expense approval*")
    await settle(0.5)
    assert len([e for e in emulator.ephemerals if e["user"] == ALICE]) == 1
    doc = await bot.db["flows"].find_one({"_id": flow_id})
    assert doc is not None and [s["principal"] for s in doc["shares"]] == [BOB]
    assert await bot.db["sharing_audit"].count_documents({"flow_id": flow_id}) == 1
    assert len(dms(bot, BOB, "shared the button")) == 1

    # Typed again on purpose: still one share and one audit entry; the answer says so.
    shown = await said(bot, ALICE, f"share {E} <@U0BOB>", "already")
    assert "<@U0BOB>" in shown
    assert await bot.db["sharing_audit"].count_documents({"flow_id": flow_id}) == 1
    assert len(dms(bot, BOB, "shared the button")) == 1

    # A run delivered twice starts one run.
    form = slash_form(bot, ALICE, f'run {E} amount=7 reason="two words"')
    await deliver(bot, form)
    await deliver(bot, form, retry=1)
    await eventually(lambda: runs_of(bot, flow_id))
    await settle(0.5)
    [run] = await runs_of(bot, flow_id)
    assert run.inputs == {"amount": 7, "reason": "two words"}
    assert len(dms(bot, BOB, "Expense 7 EUR")) == 1


async def test_delete_confirm_clicked_twice_and_retried_deletes_once(bot: BotHarness) -> None:
    flow_id = await expense_flow(bot)
    answer = await slash(bot, ALICE, f"delete {E}")
    question = copy.deepcopy(answer.ephemerals[0])
    first = await click(bot, ALICE, question, "Delete")
    assert first.ok
    await ephemeral(bot, ALICE, "Deleted *Expense approval*")
    # Slack delivers the same click again, then a second (stale) click comes in.
    element = button(question, "Delete")
    await bot.driver.block_action(ALICE, element["action_id"], retry=True)
    since = len(bot.emulator.ephemerals)
    await click(bot, ALICE, question, "Delete")
    told = await ephemeral(bot, ALICE, "already deleted", since)
    assert "Usage" not in answer_text(told)
    await settle(0.5)
    assert await bot.db["flows"].count_documents({"_id": flow_id}) == 0
    # The question became the deletion notice, and stays so.
    [shown] = [e for e in bot.emulator.ephemerals if e["ts"] == question["ts"]]
    assert "Deleted *Expense approval*" in answer_text(shown)
    everything = [answer_text(e) for e in bot.emulator.ephemerals if e["user"] == ALICE]
    assert sum("already deleted" in t for t in everything) == 1
    assert not [t for t in everything if re.search("Something went wrong", t)]


async def test_buttons_of_a_deleted_flow_answer_gracefully(bot: BotHarness) -> None:
    await expense_flow(bot)
    emulator = bot.emulator
    await said(bot, ALICE, f"share {E} <@U0BOB|bob> <@U0CAROL|carol>", "run-only")
    offer = copy.deepcopy(await dm(bot, BOB, "shared the button"))
    await click(bot, BOB, offer, "Add to my buttons")
    await ephemeral(bot, BOB, "is in your buttons")
    mine = copy.deepcopy((await slash(bot, BOB, "buttons")).ephemerals[0])
    users = copy.deepcopy((await slash(bot, ALICE, f"users {E}")).ephemerals[0])
    await said(bot, ALICE, f"link {E}", "Posted a link")
    [link] = copy.deepcopy(
        [m for m in emulator.messages_in("C0GENERAL") if "Expense approval" in m["text"]]
    )
    question = copy.deepcopy((await slash(bot, ALICE, f"delete {E}")).ephemerals[0])
    await click(bot, ALICE, question, "Delete")
    await ephemeral(bot, ALICE, "Deleted *Expense approval*")

    since = len(emulator.ephemerals)
    clicks = [
        (BOB, offer, "Add to my buttons"),
        (BOB, mine, "Run"),
        (BOB, mine, "Remove"),
        (ALICE, users, "Remove"),
        (CAROL, link, button(link, "Run Expense approval")["text"]["text"]),
        (ALICE, question, "Cancel"),
    ]
    for user, message, label in clicks:
        await click(bot, user, message, label)
    await settle(0.5)
    answers = [e for e in emulator.ephemerals[since:]]
    notices = ["\n".join(texts(v["blocks"])) for v in emulator.views.values() if v["user"] == BOB]
    assert answers and notices
    for answer in answers:
        shown = reads_well(answer)
        assert "no flow named" not in shown, shown
    assert any("no longer exists" in answer_text(a) for a in answers)
    assert all("no longer exists" in text for text in notices), notices
    # The question still says what happened, whatever was clicked late.
    [shown] = [e for e in emulator.ephemerals if e["ts"] == question["ts"]]
    assert "Deleted *Expense approval*" in answer_text(shown)
