"""SPEC §9 as a Slack user meets it: every `/flow` subcommand refused with a short ephemeral
error and its usage line when it is typed wrong, within 3 s, changing nothing; names,
quotes and Slack's escaped mentions understood; typed `key=value` inputs."""

from __future__ import annotations

from typing import Any

from emulator.server import texts
from flows.records import FlowRecord
from tests.support import (
    ALICE,
    BOB,
    CAROL,
    CRASH,
    DAVE,
    TEAM,
    Answer,
    BotHarness,
    answer_text,
    by_label,
    create_flow,
    deps,
    diff,
    eventually,
    finished_run,
    reads_well,
    runs_of,
    slash,
    state_of,
    template_source,
    wait_view,
)

E = '"Expense approval"'

TYPED = """
name: Typed inputs
kind: instant
inputs:
  - {id: amount, type: number, required: true}
  - {id: ok, type: yes/no}
  - {id: when, type: date}
  - {id: who, type: user}
  - {id: where, type: channel}
  - {id: pick, type: choice, choices: [red, green]}
  - {id: note, type: text}
steps:
  - type: post_message
    channel: "#general"
    text: "typed {{ inputs.note }}"
"""


TEMPLATES = ("expense-approval", "daily-standup")


async def seed(bot: BotHarness) -> dict[str, FlowRecord]:
    """Alice's flows: the gallery's expense approval (shared run-only with Bob), a flow
    with every input type, and a scheduled one."""
    flows = {key: await create_flow(bot, template_source(key)) for key in TEMPLATES}
    flows["typed"] = await create_flow(bot, TYPED)
    await deps(bot).sharing.share(TEAM, ALICE, "Expense approval", [BOB], "runner")
    return flows


# (text, the usage line's subcommand) for every way of typing a subcommand wrong.
MISSING = [
    (sub, sub)
    for sub in ("show edit export run share unshare users history on off delete link".split())
]
UNKNOWN_FLOW = [
    ("show nope", "show"),
    ("show “nope”", "show"),
    ("edit nope", "edit"),
    ("export nope", "export"),
    ("run nope", "run"),
    ("run nope amount=1", "run"),
    ("share nope <@U0BOB|bob>", "share"),
    ("unshare nope <@U0BOB|bob>", "unshare"),
    ("users nope", "users"),
    ("history nope", "history"),
    ("on nope", "on"),
    ("off nope", "off"),
    ("delete nope", "delete"),
    ("link nope", "link"),
    ("connections nope", "connections"),
    ("connect nope ledger", "connect"),
]
MALFORMED = [
    (f"run {E} amount=abc", "run"),
    (f"run {E} amount=12 amount=13", "run"),
    (f"run {E} colour=red", "run"),
    (f"run {E} =12", "run"),
    ("run Typed inputs amount=1 when=2026-02-30", "run"),
    ("run Typed inputs amount=1 ok=maybe", "run"),
    ("run Typed inputs amount=1 who=bob", "run"),
    ("run Typed inputs amount=1 where=finance", "run"),
    ("run Typed inputs amount=1 pick=purple", "run"),
    (f"share {E} notauser", "share"),
    (f"share {E} <@U0BOB|bob> as king", "share"),
    (f"share {E} <@U0BOB|bob> as", "share"),
    (f"share {E} @bob", "share"),
    (f"share {E} #finance", "share"),
    (f"share {E} <@U0CAROL|carol> notauser", "share"),
    (f"unshare {E} notauser", "unshare"),
    (f"link {E} #finance", "link"),
    (f"connect {E} nope", "connect"),
    (f"connect {E} ledger nope", "connect"),
]
UNBALANCED = [
    ('run "Expense approval amount=12', "run"),
    (f'run {E} amount=12 reason="team lunch', "run"),
    ("show “Expense approval", "show"),
    ('share "Expense approval <@U0BOB|bob>', "share"),
    ('users Expense approval"', "users"),
]
JUNK = [
    ("list junk", "list"),
    ("new junk", "new"),
    ("import junk", "import"),
    ("buttons junk", "buttons"),
    ("approvals junk", "approvals"),
    (f"connections {E} junk", "connections"),
    (f"connect {E} ledger a b", "connect"),
    (f"show {E} junk", "show"),
    (f"edit {E} junk", "edit"),
    (f"export {E} junk", "export"),
    (f"users {E} junk", "users"),
    (f"history {E} junk", "history"),
    (f"on {E} junk", "on"),
    (f"off {E} junk", "off"),
    (f"delete {E} junk", "delete"),
    (f"link {E} junk", "link"),
    (f"run {E} junk amount=1", "run"),
    (f"share {E} <@U0CAROL|carol> junk", "share"),
    (f"unshare {E} <@U0BOB|bob> junk", "unshare"),
    ("help junk", "help"),
    ("frobnicate", "help"),
    ("frobnicate now please", "help"),
]


async def check_refusals(
    bot: BotHarness, user: str, cases: list[tuple[str, str | None]]
) -> list[str]:
    """Each case answered once, ephemerally, with its usage line (None: any short refusal),
    and nothing changed. Returns the failures (all of them, for one readable report)."""
    failures: list[str] = []
    for text, sub in cases:
        before = await state_of(bot)
        try:
            answer = await slash(bot, user, text, settle=0.05)
        except AssertionError as exc:
            failures.append(f"/flow {text}: {exc}")
            continue
        after = await state_of(bot)
        problem = refusal_problem(answer, sub)
        if problem:
            failures.append(f"/flow {text}: {problem}\n    {answer.text!r}")
        changes = diff(before, after)
        if changes:
            failures.append(f"/flow {text} changed something: {changes}")
    return failures


def refusal_problem(answer: Answer, sub: str | None) -> str | None:
    if len(answer.ephemerals) != 1:
        return f"{len(answer.ephemerals)} answers instead of one"
    [message] = answer.ephemerals
    try:
        text = reads_well(message)
    except AssertionError as exc:
        return str(exc)
    if message.get("via") not in ("ack", "response_url"):
        return f"answered via {message.get('via')}, not as the command's ephemeral answer"
    if len(text) > 700:
        return f"not short ({len(text)} characters)"
    if sub is not None:
        if "Usage:" not in text:
            return "no usage line"
        if f"Usage: `/flow {sub} " not in text and f"Usage: `/flow {sub}`" not in text:
            return f"the usage line is not that of /flow {sub}"
    return None


async def test_every_subcommand_typed_wrong_gets_its_usage_and_changes_nothing(
    bot: BotHarness,
) -> None:
    await seed(bot)
    cases: list[tuple[str, str | None]] = [
        *MISSING,
        *UNKNOWN_FLOW,
        *MALFORMED,
        *UNBALANCED,
        *JUNK,
    ]
    failures = await check_refusals(bot, ALICE, cases)
    assert not failures, "\n".join(failures)


async def test_refusals_without_permission_are_short_and_change_nothing(bot: BotHarness) -> None:
    await seed(bot)
    # Bob may run Expense approval (run-only), nothing more.
    bob: list[tuple[str, str | None]] = [
        (f"edit {E}", None),
        (f"export {E}", None),
        (f"delete {E}", None),
        (f"on {E}", None),
        (f"off {E}", None),
        (f"share {E} <@U0CAROL|carol>", None),
        (f"unshare {E} <@U0ALICE|alice>", None),
        (f"users {E}", None),
        (f"connect {E} ledger", None),
        ('run "Daily standup reminder"', None),
        ("show Typed inputs", None),
    ]
    failures = await check_refusals(bot, BOB, bob)
    # Dave has no access at all.
    dave: list[tuple[str, str | None]] = [
        (f"run {E} amount=1 reason=x", None),
        (f"show {E}", None),
        (f"link {E}", None),
        (f"history {E}", None),
        (f"connections {E}", None),
    ]
    failures += await check_refusals(bot, DAVE, dave)
    # Alice owns them, but these are still refused.
    alice: list[tuple[str, str | None]] = [
        ('share "Daily standup reminder" <@U0BOB|bob> as runner', None),
        ('link "Daily standup reminder"', None),
        (f"unshare {E} <@U0ALICE|alice>", None),
        (f"share {E} <@U0ALICE|alice>", None),
    ]
    failures += await check_refusals(bot, ALICE, alice)
    assert not failures, "\n".join(failures)


# ------------------------------------------------------------------ names and mentions


async def test_a_name_with_spaces_by_quotes_smart_quotes_case_and_id(bot: BotHarness) -> None:
    flows = await seed(bot)
    flow_id = flows["expense-approval"].id
    for ref in (
        '"Expense approval"',
        "“Expense approval”",
        "“expense APPROVAL”",
        "EXPENSE approval",
        flow_id,
    ):
        answer = await slash(bot, ALICE, f"show {ref}")
        text = reads_well(answer.ephemerals[0])
        assert "*Expense approval*" in text and "Usage:" not in text, (ref, text)
        assert f"`{flow_id}`" in text
    answer = await slash(bot, ALICE, "history “expense approval”")
    assert "Expense approval" in reads_well(answer.ephemerals[0])
    # A modal-opening subcommand takes the name the same way.
    answer = await slash(bot, ALICE, "connections expense approval", expect=0)
    assert not answer.ephemerals
    [panel] = [v for v in bot.emulator.views.values() if v["user"] == ALICE]
    assert any("ledger" in text for text in texts(panel["blocks"]))


async def test_escaped_mentions_with_and_without_names(bot: BotHarness) -> None:
    flows = await seed(bot)
    flow = flows["expense-approval"]

    async def shares() -> dict[str, str]:
        doc = await bot.db["flows"].find_one({"_id": flow.id})
        assert doc is not None
        return {s["principal"]: s["role"] for s in doc["shares"]}

    answer = await slash(bot, ALICE, f"share {E} <@U0CAROL> as owner")
    assert "<@U0CAROL>" in reads_well(answer.ephemerals[0])
    answer = await slash(bot, ALICE, f"share {E} <@U0CAROL|carol> as owner")
    assert "already" in reads_well(answer.ephemerals[0])
    answer = await slash(
        bot, ALICE, "share “Expense approval” <!subteam^S0LEADS|@leads> <#C0FINANCE|finance>"
    )
    text = reads_well(answer.ephemerals[0])
    assert "<!subteam^S0LEADS>" in text and "<#C0FINANCE>" in text
    assert await shares() == {
        BOB: "runner",
        CAROL: "owner",
        "S0LEADS": "runner",
        "C0FINANCE": "runner",
    }
    # Slack sends some channels with an empty name.
    answer = await slash(bot, ALICE, f"unshare {E} <#C0FINANCE|>")
    assert "no longer shared" in reads_well(answer.ephemerals[0])
    answer = await slash(bot, ALICE, f"share {E} <#C0FINANCE|> as owner")
    reads_well(answer.ephemerals[0])
    assert (await shares())["C0FINANCE"] == "owner"
    answer = await slash(bot, ALICE, f"link {E} <#C0FINANCE|>")
    assert "<#C0FINANCE>" in reads_well(answer.ephemerals[0])
    assert [m for m in bot.emulator.messages_in("C0FINANCE") if "Expense approval" in m["text"]]
    # The creator is never a share of their own; a user group by id works as a mention does.
    answer = await slash(bot, ALICE, f"unshare {E} <!subteam^S0LEADS> <@U0CAROL|carol>")
    reads_well(answer.ephemerals[0])
    assert await shares() == {BOB: "runner", "C0FINANCE": "owner"}


# ------------------------------------------------------------------ typed inputs


async def run_inputs(bot: BotHarness, flow: FlowRecord, text: str, count: int) -> dict[str, Any]:
    answer = await slash(bot, ALICE, text)
    assert "Running" in reads_well(answer.ephemerals[0]), answer.text
    runs = await finished_run(bot, flow.id, count)
    assert len(runs) == count
    run = runs[-1]
    assert run.status == "succeeded", run.error
    return dict(run.inputs)


async def test_run_takes_quoted_values_and_coerces_every_input_type(bot: BotHarness) -> None:
    flows = await seed(bot)
    typed = flows["typed"]
    inputs = await run_inputs(
        bot,
        typed,
        "run Typed inputs amount=12.5 ok=yes when=2026-03-01 who=<@U0BOB|bob> "
        'where=<#C0FINANCE|finance> pick=GREEN note="team lunch"',
        1,
    )
    assert inputs == {
        "amount": 12.5,
        "ok": True,
        "when": "2026-03-01",
        "who": BOB,
        "where": "C0FINANCE",
        "pick": "green",
        "note": "team lunch",
    }
    inputs = await run_inputs(
        bot,
        typed,
        'run "Typed inputs" amount=-3 ok=No who=<@U0CAROL> where=<#C0FINANCE|> note=“two words”',
        2,
    )
    assert inputs == {
        "amount": -3,
        "ok": False,
        "who": CAROL,
        "where": "C0FINANCE",
        "note": "two words",
    }
    assert bot.emulator.messages_in("#general")[-1]["text"] == "typed two words"


async def test_the_spec_example_passes_team_lunch_as_one_value(bot: BotHarness) -> None:
    flows = await seed(bot)
    flow = flows["expense-approval"]
    answer = await slash(bot, ALICE, f'run {E} amount=12 reason="team lunch"')
    assert "Running *Expense approval*" in reads_well(answer.ephemerals[0])
    [run] = await eventually(lambda: runs_of(bot, flow.id))
    assert run.inputs == {"amount": 12, "reason": "team lunch"}
    assert CRASH not in answer.text


RND = """
name: R&D <lunch> budget
kind: instant
inputs:
  - {id: reason, type: text, required: true}
steps:
  - type: post_message
    channel: "#general"
    text: "{{ inputs.reason }}"
"""


async def test_what_slack_escapes_is_read_as_typed(bot: BotHarness) -> None:
    """With `should_escape`, Slack sends `&`, `<` and `>` typed by people as entities."""
    await seed(bot)
    flow = await create_flow(bot, RND)
    answer = await slash(bot, ALICE, 'show "R&amp;D &lt;lunch&gt; budget"')
    assert "R&amp;D &lt;lunch&gt; budget" in reads_well(answer.ephemerals[0])
    assert "Usage:" not in answer.text
    answer = await slash(
        bot, ALICE, 'run R&amp;D &lt;lunch&gt; budget reason="pizza &amp; &gt;1 drink"'
    )
    assert "Running" in reads_well(answer.ephemerals[0])
    [run] = await finished_run(bot, flow.id)
    assert run.inputs == {"reason": "pizza & >1 drink"}
    # Typed text echoed in an error stays text (not Slack markup).
    answer = await slash(bot, ALICE, "show &lt;@U0BOB&gt; budget")
    text = reads_well(answer.ephemerals[0])
    assert "`&lt;@U0BOB&gt; budget`" in text and "Usage:" in text


async def test_people_listed_with_commas_are_understood(bot: BotHarness) -> None:
    flows = await seed(bot)
    answer = await slash(bot, ALICE, f"share {E} <@U0CAROL|carol>, <@U0DAVE|dave>,<#C0FINANCE|>")
    reads_well(answer.ephemerals[0])
    doc = await bot.db["flows"].find_one({"_id": flows["expense-approval"].id})
    assert doc is not None
    assert sorted(s["principal"] for s in doc["shares"]) == sorted([BOB, CAROL, DAVE, "C0FINANCE"])


async def test_missing_inputs_open_the_run_form_prefilled_and_typed(bot: BotHarness) -> None:
    flows = await seed(bot)
    typed = flows["typed"]
    answer = await slash(bot, ALICE, 'run "Typed inputs" ok=yes pick=RED', expect=0)
    assert not answer.ephemerals
    view = await wait_view(bot, ALICE)
    assert (view["title"] or {}).get("text") == "Run flow"
    values = by_label(
        view,
        {
            "amount": "4.5",
            "when": "2026-03-01",
            "who": BOB,
            "where": "C0FINANCE",
            "note": "by the form",
        },
    )
    response = await bot.driver.fill_and_submit(ALICE, view["id"], values)
    assert response.ok and not response.timed_out, response
    [run] = await finished_run(bot, typed.id)
    assert run.inputs == {
        "amount": 4.5,
        "ok": True,
        "when": "2026-03-01",
        "who": BOB,
        "where": "C0FINANCE",
        "pick": "red",
        "note": "by the form",
    }


async def test_a_failure_is_answered_once_in_place_and_changes_nothing(bot: BotHarness) -> None:
    """A listener's unexpected error reaches the app's one error handler: the person who
    typed the command reads that nothing was changed, once, and only them."""
    bot.emulator.fail_next("views.open", 500, count=10)  # past the client's retries
    before = await state_of(bot)
    answer = await slash(bot, ALICE, "new", settle=0.5)
    assert [answer_text(e) for e in answer.ephemerals] == [
        "Something went wrong; nothing was changed.\n"
        ":warning: Something went wrong; nothing was changed."
    ]
    assert answer.ephemerals[0]["via"] == "response_url"
    assert diff(before, await state_of(bot)) == []
