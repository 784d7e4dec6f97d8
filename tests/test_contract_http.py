"""SPEC §10 as an operator meets it over HTTP: `/healthz`, `/slack/events` (signed only),
`/hooks/<flow id>`; every error from these routes is JSON."""

from __future__ import annotations

import json
import time
from typing import Any
from urllib.parse import urlencode

from emulator.driver import FORM
from tests.support import (
    ALICE,
    TEAM,
    BotHarness,
    create_flow,
    diff,
    http_request,
    runs_of,
    save_flow,
    state_of,
    template_source,
)


async def request(
    bot: BotHarness,
    method: str,
    path: str,
    *,
    data: bytes | str | None = None,
    headers: dict[str, str] | None = None,
) -> tuple[int, str, Any]:
    """(status, content type, parsed JSON body or None) of a request to the bot."""
    return await http_request(method, bot.url + path, data=data, headers=headers)


async def test_healthz_answers_status_db_and_version(bot: BotHarness) -> None:
    status, content_type, body = await request(bot, "GET", "/healthz")
    assert (status, content_type) == (200, "application/json")
    assert body["status"] == "ok" and body["db"] == "ok"
    assert isinstance(body["version"], str) and body["version"]


async def test_a_signed_url_verification_gets_its_challenge_back(bot: BotHarness) -> None:
    payload = json.dumps(
        {"token": "x", "challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3g", "type": "url_verification"}
    )
    headers = {"Content-Type": "application/json", **bot.driver.sign(payload)}
    response = await bot.driver.post_raw(payload.encode(), headers)
    assert response.status == 200 and not response.timed_out
    assert response.json == {"challenge": "3eZbrw1aBm2rZgRNFdxV2595E9CY3g"}
    # Unsigned, the same request is refused.
    status, content_type, body = await request(
        bot, "POST", "/slack/events", data=payload, headers={"Content-Type": "application/json"}
    )
    assert status == 401 and content_type == "application/json" and body is not None


async def test_unsigned_or_stale_slack_requests_get_401_json_and_do_nothing(
    bot: BotHarness,
) -> None:
    flow = await create_flow(bot, template_source("expense-approval"))
    interaction = urlencode(
        {
            "payload": json.dumps(
                {
                    "type": "block_actions",
                    "user": {"id": ALICE},
                    "team": {"id": TEAM},
                    "trigger_id": "1.2.3",
                    "actions": [{"action_id": "run_flow", "value": flow.id, "type": "button"}],
                }
            )
        }
    )
    command = urlencode(
        {"command": "/flow", "text": f"delete {flow.id}", "user_id": ALICE, "team_id": TEAM}
    )
    event = json.dumps(
        {
            "type": "event_callback",
            "team_id": TEAM,
            "event_id": "Ev0UNSIGNED",
            "event": {"type": "app_home_opened", "user": ALICE, "tab": "home"},
        }
    )
    before = await state_of(bot)
    calls = len(bot.emulator.calls)
    stale = str(int(time.time()) - 10 * 60)
    cases = [
        (interaction, FORM, {}),
        (command, FORM, {}),
        (event, "application/json", {}),
        (event, "application/json", {**bot.driver.sign(event, int(stale))}),
        (
            interaction,
            FORM,
            {
                "X-Slack-Signature": "v0=" + "0" * 64,
                "X-Slack-Request-Timestamp": str(int(time.time())),
            },
        ),
    ]
    for body, content_type, extra in cases:
        status, answered_as, answer = await request(
            bot, "POST", "/slack/events", data=body, headers={"Content-Type": content_type, **extra}
        )
        assert status == 401, (body[:40], status)
        assert answered_as == "application/json" and answer is not None, answered_as
    assert await runs_of(bot, flow.id) == []
    assert bot.emulator.calls[calls:] == []
    assert diff(before, await state_of(bot)) == []


async def test_webhook_errors_are_json(bot: BotHarness) -> None:
    saved = await save_flow(bot, template_source("webhook-to-channel"))
    token = saved.webhook_token
    assert token is not None
    flow_id = saved.flow.id
    before = await state_of(bot)

    status, content_type, body = await request(
        bot, "POST", "/hooks/Fnope", data="{}", headers={"X-Flowbot-Token": token}
    )
    assert (status, content_type) == (404, "application/json") and body["error"], body

    status, content_type, body = await request(
        bot,
        "POST",
        f"/hooks/{flow_id}",
        data="{not json",
        headers={"X-Flowbot-Token": token, "Content-Type": "application/json"},
    )
    assert (status, content_type) == (400, "application/json") and body["error"], body

    status, content_type, body = await request(
        bot, "POST", f"/hooks/{flow_id}", data="{}", headers={"X-Flowbot-Token": "wrong"}
    )
    assert (status, content_type) == (401, "application/json") and body["error"], body

    status, content_type, body = await request(
        bot,
        "POST",
        f"/hooks/{flow_id}",
        data=b"{" + b" " * 300_000 + b"}",
        headers={"X-Flowbot-Token": token},
    )
    assert status in (400, 413) and content_type == "application/json", (status, content_type)
    assert await runs_of(bot, flow_id) == []
    assert diff(before, await state_of(bot)) == []

    # With the right token and JSON, the run starts (the contract's happy case).
    status, content_type, body = await request(
        bot,
        "POST",
        f"/hooks/{flow_id}",
        data=json.dumps({"text": "hello"}),
        headers={"X-Flowbot-Token": token, "Content-Type": "application/json"},
    )
    assert status in (200, 201, 202) and content_type == "application/json", (status, body)


async def test_every_error_of_our_routes_is_json(bot: BotHarness) -> None:
    problems: list[str] = []
    for method, path, data, headers in [
        ("GET", "/slack/events", None, {}),
        ("GET", "/hooks/Fnope", None, {}),
        ("POST", "/slack/events", "not json", {"Content-Type": "application/json"}),
        ("POST", "/slack/events", "payload=%7Bbad", {"Content-Type": FORM}),
        ("POST", "/slack/events", "x" * 1_100_000, {"Content-Type": FORM}),
    ]:
        status, content_type, body = await request(bot, method, path, data=data, headers=headers)
        if status < 400 or content_type != "application/json" or body is None:
            problems.append(f"{method} {path} {str(data)[:20]!r}: {status} {content_type}")
        if path == "/slack/events" and method == "POST" and status not in (400, 401, 413):
            problems.append(f"{method} {path} {str(data)[:20]!r}: {status}, not 401/400/413")
    assert not problems, problems
