"""Issue 19 (requests that cannot hurt): every malformed request to `/slack/events` or
`/hooks/<flow id>` gets a short 4xx and no traceback, and changes nothing; numbers beyond
64 bits, JSON too deep and keys with NUL are refused with a short clear answer."""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import time
from typing import Any
from urllib.parse import urlencode

import pytest

from emulator.driver import FORM
from tests.support import (
    ALICE,
    BOB,
    SIGNING_SECRET,
    TEAM,
    BotHarness,
    RestartableBot,
    approval_of,
    create_flow,
    deps,
    diff,
    finished_run,
    http_request,
    runs_of,
    save_flow,
    settle,
    slash,
    state_of,
    template_source,
    waiting_run,
)


def signed(body: bytes, timestamp: str | None = None) -> dict[str, str]:
    """Headers signing raw bytes as Slack does (the driver signs text only)."""
    ts = timestamp or str(int(time.time()))
    mac = hmac.new(SIGNING_SECRET.encode(), b"v0:" + ts.encode() + b":" + body, hashlib.sha256)
    return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=" + mac.hexdigest()}


def no_tracebacks(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [r.getMessage() for r in caplog.records if r.exc_info or r.levelno >= logging.ERROR]


async def post(bot: BotHarness, body: bytes, headers: dict[str, str]) -> tuple[int, Any]:
    status, _, answer = await http_request(
        "POST", bot.url + "/slack/events", data=body, headers=headers
    )
    return status, answer


async def test_unsigned_garbage_gets_401_without_a_traceback(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    now = str(int(time.time()))
    before = await state_of(bot)
    cases: list[tuple[bytes, dict[str, str]]] = [
        (b"command=/flow", {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": "v0=00"})
        for ts in ("abc", "", "1.5", "-5", "9" * 400, "١٢٣")
    ]
    cases += [
        (b"payload=\xff\xfe", {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=00"}),
        (b"a=b", {"X-Slack-Request-Timestamp": now, "X-Slack-Signature": "v0=\xe9"}),
    ]
    for body, headers in cases:
        status, answer = await post(bot, body, {"Content-Type": FORM, **headers})
        assert status == 401 and answer is not None, (body, headers, status)
    status, answer = await post(
        bot,
        b"a=b",
        {"Content-Type": FORM + "; charset=bogus", "X-Slack-Request-Timestamp": now},
    )
    assert status == 401 and answer is not None
    assert no_tracebacks(caplog) == []
    assert diff(before, await state_of(bot)) == []


async def test_signed_payloads_of_the_wrong_shape_get_400(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    flow = await create_flow(bot, template_source("expense-approval"))
    before = await state_of(bot)
    calls = len(bot.emulator.calls)
    user, team = {"id": ALICE}, {"id": TEAM}
    payloads: list[Any] = [
        None,
        [],
        "text",
        {"type": 5},
        {"type": "block_actions", "user": user, "team": team, "actions": [None]},
        {"type": "block_actions", "user": user, "team": team, "actions": None},
        {"type": "block_actions", "user": user, "team": team, "actions": []},
        {"type": "block_actions", "user": user, "team": None, "actions": [{"action_id": "x"}]},
        {"type": "block_actions", "user": "U0ALICE", "team": team, "actions": []},
        {
            "type": "block_actions",
            "user": user,
            "team": team,
            "trigger_id": "1.2",
            "actions": [{"action_id": "run_flow", "value": {"id": flow.id}}],
        },
        {"type": "view_submission", "user": user, "team": team},
        {"type": "view_submission", "user": user, "team": team, "view": {"id": "V1", "state": 3}},
        {
            "type": "view_submission",
            "user": user,
            "team": team,
            "view": {"id": "V1", "callback_id": "run_inputs", "private_metadata": {"a": 1}},
        },
        {"type": "event_callback", "team_id": TEAM, "event_id": "Ev1", "event": None},
        {"type": "event_callback", "team_id": TEAM, "event": {"type": "message"}},
    ]
    for payload in payloads:
        body = urlencode({"payload": json.dumps(payload)}).encode()
        status, answer = await post(bot, body, {"Content-Type": FORM, **signed(body)})
        assert status == 400 and answer is not None, (payload, status)
    raw = [
        b"payload=\xff\xfe",
        b"payload=%7Bbad",
        b'{"type": "event_callback", ' * 1 + b"[" * 5000 + b"]" * 5000 + b"}",
        b"payload=" + b"%5B" * 5000 + b"%5D" * 5000,
        b"command=/flow&user_id=U0ALICE",  # no team
    ]
    for body in raw:
        status, answer = await post(bot, body, {"Content-Type": FORM, **signed(body)})
        assert status == 400 and answer is not None, (body[:40], status)
    # A bogus charset is ignored: Slack sends UTF-8, and so the body is read.
    body = b"payload=null"
    status, answer = await post(
        bot, body, {"Content-Type": FORM + "; charset=bogus", **signed(body)}
    )
    assert status == 400 and answer is not None
    assert no_tracebacks(caplog) == []
    assert await runs_of(bot, flow.id) == []
    assert bot.emulator.calls[calls:] == []
    assert diff(before, await state_of(bot)) == []


async def test_numbers_beyond_64_bits_get_a_short_clear_error(bot: BotHarness) -> None:
    flow = await create_flow(bot, template_source("expense-approval"))
    for amount in ("99999999999999999999", "9" * 4301, "1" + "0" * 50 + ".5", "1e999"):
        answer = await slash(bot, ALICE, f'run "Expense approval" amount={amount} reason=x')
        text = answer.text
        assert "Something went wrong" not in text and "int_max_str_digits" not in text, text
        assert "amount" in text.lower() and len(text) < 600, text
    assert await runs_of(bot, flow.id) == []
    # Within 64 bits it runs.
    await slash(bot, ALICE, 'run "Expense approval" amount=9223372036854775807 reason=x')
    assert len(await runs_of(bot, flow.id)) == 1


async def test_webhook_bodies_beyond_the_limits_get_400(
    bot: BotHarness, caplog: pytest.LogCaptureFixture
) -> None:
    saved = await save_flow(bot, template_source("webhook-to-channel"))
    token = saved.webhook_token
    assert token is not None
    before = await state_of(bot)
    bodies = [
        b'{"amount": 99999999999999999999}',
        b'{"amount": ' + b"9" * 4301 + b"}",
        b'{"amount": -9223372036854775809}',
        b'{"x": 1e999}',
        b'{"x": NaN}',
        b"[" * 5000 + b"]" * 5000,
        b'{"a": ' * 40 + b"1" + b"}" * 40,
        b'{"a\\u0000b": 1}',
        b'{"' + b"k" * 300 + b'": 1}',
        b'{"text": "\xff"}',
    ]
    for body in bodies:
        status, content_type, answer = await http_request(
            "POST",
            f"{bot.url}/hooks/{saved.flow.id}",
            data=body,
            headers={"X-Flowbot-Token": token, "Content-Type": "application/json"},
        )
        assert status == 400 and content_type == "application/json", (body[:30], status)
        assert len(answer["message"]) < 200 and "Traceback" not in answer["message"], answer
    assert await runs_of(bot, saved.flow.id) == []
    assert diff(before, await state_of(bot)) == []
    assert no_tracebacks(caplog) == []


async def test_a_signed_request_replayed_after_a_restart_does_nothing(
    emulator: Any, mongo_uri: str, db_name: str
) -> None:
    bots = RestartableBot(emulator, mongo_uri, db_name)
    bot = await bots.start()
    try:
        flow = await create_flow(bot, template_source("blank"))
        form = {
            "command": "/flow",
            "text": 'run "My new flow"',
            "team_id": TEAM,
            "user_id": ALICE,
            "channel_id": "C0GENERAL",
            "trigger_id": "13345224609.738474920.8088930838d88f008e0",
            "response_url": emulator.new_response_url(ALICE, "C0GENERAL"),
        }
        body = urlencode(form).encode()
        headers = {"Content-Type": FORM, **signed(body)}
        assert (await post(bot, body, headers))[0] == 200
        await finished_run(bot, flow.id)
        assert len(await runs_of(bot, flow.id)) == 1

        bot = await bots.restart()
        calls, answers = len(bot.emulator.calls), len(bot.emulator.ephemerals)
        assert (await post(bot, body, headers))[0] == 200
        await settle(0.3)
        assert len(await runs_of(bot, flow.id)) == 1
        assert [m for m, _ in bot.emulator.calls[calls:] if m != "auth.test"] == []
        assert len(bot.emulator.ephemerals) == answers

        # A Run button clicked once, its delivery replayed after another restart.
        click = {
            "type": "block_actions",
            "user": {"id": ALICE},
            "team": {"id": TEAM},
            "trigger_id": "13345224609.738474920.click",
            "actions": [{"action_id": "run_flow", "value": flow.id, "type": "button"}],
        }
        body = urlencode({"payload": json.dumps(click)}).encode()
        headers = {"Content-Type": FORM, **signed(body)}
        assert (await post(bot, body, headers))[0] == 200
        await finished_run(bot, flow.id, 2)
        bot = await bots.restart()
        assert (await post(bot, body, headers))[0] == 200
        await settle(0.3)
        assert len(await runs_of(bot, flow.id)) == 2
    finally:
        await bots.stop()


APPROVAL = """
name: Laptop
steps:
  - {id: ask, type: approval, approvers: ["<@U0BOB>"], title: "Laptop"}
  - {id: after, type: post_message, channel: "#general", text: "{{ steps.ask.outcome }}"}
"""


async def test_an_approval_click_taken_in_elsewhere_changes_nothing_and_answers_nothing(
    bot: BotHarness,
) -> None:
    """A click's delivery is recorded while its approval is read: when another process (or
    this one before a restart) had taken it in, the response is not written and no answer
    is sent, though the read found the approval pending."""
    flow = await create_flow(bot, APPROVAL)
    assert (await bot.driver.slash(ALICE, "run Laptop")).ok
    run = await waiting_run(bot, flow.id)
    approval = await approval_of(bot, run.id)
    trigger_id = "13345224609.738474920.approval"
    now = deps(bot).clock.now()
    log = deps(bot).deliveries
    assert log is not None and await log.first_time(f"block_actions:{trigger_id}", now)
    click = {
        "type": "block_actions",
        "user": {"id": BOB},
        "team": {"id": TEAM},
        "trigger_id": trigger_id,
        "response_url": bot.emulator.new_response_url(BOB, "DBOB"),
        "actions": [{"action_id": "approval:Approve", "value": approval.id, "type": "button"}],
    }
    body = urlencode({"payload": json.dumps(click)}).encode()
    answers = len(bot.emulator.response_url_posts)
    assert (await post(bot, body, {"Content-Type": FORM, **signed(body)}))[0] == 200
    await settle(0.3)
    assert (await approval_of(bot, run.id)).responses == []
    assert (await waiting_run(bot, flow.id)).id == run.id
    assert len(bot.emulator.response_url_posts) == answers
    # The same click delivered for the first time counts.
    click["trigger_id"] = "13345224609.738474920.approval2"
    body = urlencode({"payload": json.dumps(click)}).encode()
    assert (await post(bot, body, {"Content-Type": FORM, **signed(body)}))[0] == 200
    await finished_run(bot, flow.id)
    assert [r.user for r in (await approval_of(bot, run.id)).responses] == [BOB]


async def test_a_refused_command_leaves_no_delivery_behind(bot: BotHarness) -> None:
    before = await state_of(bot)
    # Refused in the acknowledgement: the delivery is not recorded (a command refused
    # later, by its use case, is: the trade-off for checking before the work).
    await slash(bot, ALICE, "frobnicate")
    await slash(bot, ALICE, 'run "unclosed')
    await slash(bot, ALICE, "help")
    assert diff(before, await state_of(bot)) == []
