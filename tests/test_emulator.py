"""The Slack emulator and driver, over real HTTP, checked with slack_sdk's own client."""

from __future__ import annotations

import asyncio
import json
import time
from collections.abc import AsyncIterator
from typing import Any
from urllib.parse import parse_qsl

import pytest
from aiohttp import web
from slack_sdk.errors import SlackApiError
from slack_sdk.http_retry.builtin_async_handlers import AsyncRateLimitErrorRetryHandler
from slack_sdk.signature import SignatureVerifier
from slack_sdk.web.async_client import AsyncWebClient
from slack_sdk.webhook.async_client import AsyncWebhookClient

from emulator import SlackDriver, SlackEmulator

SECRET = "emulator-test-secret"
ALICE, BOB = "U0ALICE", "U0BOB"


def button(action_id: str, value: str, text: str = "Go") -> dict[str, Any]:
    return {
        "type": "button",
        "action_id": action_id,
        "value": value,
        "text": {"type": "plain_text", "text": text},
    }


def section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": text}}


MODAL: dict[str, Any] = {
    "type": "modal",
    "callback_id": "run_flow",
    "private_metadata": "flow-1",
    "title": {"type": "plain_text", "text": "Run flow"},
    "submit": {"type": "plain_text", "text": "Run"},
    "blocks": [
        {
            "type": "input",
            "block_id": "amount",
            "label": {"type": "plain_text", "text": "Amount"},
            "element": {"type": "number_input", "action_id": "v", "is_decimal_allowed": False},
        },
        {
            "type": "input",
            "block_id": "kind",
            "label": {"type": "plain_text", "text": "Kind"},
            "element": {
                "type": "static_select",
                "action_id": "v",
                "options": [
                    {"text": {"type": "plain_text", "text": "Travel"}, "value": "travel"},
                    {"text": {"type": "plain_text", "text": "Food"}, "value": "food"},
                ],
            },
        },
        {
            "type": "input",
            "block_id": "who",
            "optional": True,
            "label": {"type": "plain_text", "text": "Who"},
            "element": {"type": "users_select", "action_id": "v", "initial_user": ALICE},
        },
        {"type": "actions", "elements": [button("more", "1", "More")]},
    ],
}


@pytest.fixture
async def emu() -> AsyncIterator[SlackEmulator]:
    slack = SlackEmulator()
    slack.add_user(ALICE, "alice", is_admin=True)
    slack.add_user(BOB, "bob")
    slack.add_channel("C0GENERAL", "general", members=[ALICE, BOB, "U0CAROL"])
    slack.add_usergroup("S0LEADS", "leads", users=[BOB])
    await slack.start()
    yield slack
    await slack.stop()


@pytest.fixture
def client(emu: SlackEmulator) -> AsyncWebClient:
    return AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)


async def error_of(call: Any) -> str:
    with pytest.raises(SlackApiError) as info:
        await call
    return str(info.value.response["error"])


class FakeBot:
    """A tiny bot endpoint: checks Slack's signature, records requests, answers as told."""

    def __init__(self) -> None:
        self.verifier = SignatureVerifier(SECRET)
        self.requests: list[dict[str, Any]] = []
        self.answers: list[dict[str, Any]] = []

    async def handle(self, request: web.Request) -> web.Response:
        raw = await request.read()
        if not self.verifier.is_valid_request(raw, dict(request.headers)):
            return web.Response(status=401)
        if request.content_type == "application/json":
            body = json.loads(raw)
        else:
            body = dict(parse_qsl(raw.decode()))
            if "payload" in body:
                body = json.loads(body["payload"])
        self.requests.append({"headers": dict(request.headers), "body": body})
        return web.json_response(self.answers.pop(0)) if self.answers else web.Response()


@pytest.fixture
async def bot(emu: SlackEmulator) -> AsyncIterator[tuple[FakeBot, SlackDriver]]:
    fake = FakeBot()
    app = web.Application()
    app.router.add_post("/slack/events", fake.handle)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", 0).start()
    port = runner.addresses[0][1]
    driver = SlackDriver(f"http://127.0.0.1:{port}/slack/events", SECRET, emu)
    yield fake, driver
    await driver.close()
    await runner.cleanup()


# ------------------------------------------------------------------ Web API


async def test_auth(emu: SlackEmulator, client: AsyncWebClient) -> None:
    auth = await client.auth_test()
    assert (auth["user_id"], auth["bot_id"], auth["team_id"]) == ("U0BOT", "B0BOT", "T0TEAM")
    bad = AsyncWebClient(token="xoxb-wrong", base_url=emu.api_url)
    assert await error_of(bad.auth_test()) == "invalid_auth"
    assert await error_of(AsyncWebClient(base_url=emu.api_url).auth_test()) == "not_authed"
    assert await error_of(client.api_call("nope.nothing")) == "unknown_method"


async def test_messages(emu: SlackEmulator, client: AsyncWebClient) -> None:
    blocks = [section("hello *there*"), {"type": "actions", "elements": [button("ok", "1")]}]
    posted = await client.chat_postMessage(channel="#general", text="hello", blocks=blocks)
    assert posted["channel"] == "C0GENERAL" and posted["message"]["bot_id"] == "B0BOT"
    dm = await client.chat_postMessage(channel=BOB, text="psst")
    assert dm["channel"] == emu.dm_channel(BOB) and dm["channel"].startswith("D")
    assert float(dm["ts"]) > float(posted["ts"])
    stored = emu.messages_in("#general")[0]
    assert stored["user"] == "U0BOT" and stored["blocks"][1]["elements"][0]["action_id"] == "ok"
    assert all(b.get("block_id") for b in stored["blocks"])  # Slack fills them in

    await client.chat_update(channel="C0GENERAL", ts=posted["ts"], text="bye", blocks=[])
    assert (stored["text"], stored["blocks"], stored["updated"]) == ("bye", [], 1)
    missing = client.chat_update(channel="C0GENERAL", ts="1.000001", text="x")
    assert await error_of(missing) == "message_not_found"

    eph = await client.chat_postEphemeral(channel="C0GENERAL", user=ALICE, text="only you")
    assert emu.last_ephemeral(ALICE) == emu.ephemerals[-1]
    assert emu.ephemerals[-1]["ts"] == eph["message_ts"]
    assert emu.find_messages("psst") == emu.messages_in(BOB)
    assert [c[0] for c in emu.calls].count("chat.postMessage") == 2

    # form-encoded posts carry blocks as a JSON string
    form = {"channel": "C0GENERAL", "text": "f", "blocks": json.dumps([section("from a form")])}
    await client.api_call("chat.postMessage", data=form)
    assert emu.find_messages("from a form")[0]["blocks"][0]["type"] == "section"


@pytest.mark.filterwarnings("ignore:The top-level `text`:UserWarning")
async def test_validation(client: AsyncWebClient) -> None:
    async def post(**kwargs: Any) -> str:
        return await error_of(client.chat_postMessage(channel="C0GENERAL", **kwargs))

    assert await post(text="t", blocks=[section(f"b{i}") for i in range(51)]) == "invalid_blocks"
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="C0GENERAL", text="t", blocks=[section("x" * 3001)])
    assert info.value.response["error"] == "invalid_blocks" and info.value.response["errors"]
    dupes = [section("a") | {"block_id": "x"}, section("b") | {"block_id": "x"}]
    assert await post(text="t", blocks=dupes) == "invalid_blocks"
    assert await post(text="t", blocks=[{"type": "no_such_block"}]) == "invalid_blocks"
    assert await post(text="") == "no_text"
    assert await post(text="x" * 40_001) == "msg_too_long"


async def test_views(emu: SlackEmulator, client: AsyncWebClient) -> None:
    assert await error_of(client.views_open(trigger_id="made.up", view=MODAL)) == (
        "invalid_trigger_id"
    )
    trigger = emu.issue_trigger_id(ALICE)
    opened = (await client.views_open(trigger_id=trigger, view=MODAL))["view"]
    assert opened["id"].startswith("V") and opened["hash"]
    assert emu.views[opened["id"]]["user"] == ALICE
    assert emu.views[opened["id"]]["stack"] == [opened["id"]]
    assert await error_of(client.views_open(trigger_id=trigger, view=MODAL)) == (
        "exchanged_trigger_id"
    )
    emu.trigger_ttl = 0.01
    late = emu.issue_trigger_id(ALICE)
    await asyncio.sleep(0.05)
    assert await error_of(client.views_open(trigger_id=late, view=MODAL)) == "expired_trigger_id"
    emu.trigger_ttl = 3.0

    long_title = MODAL | {"title": {"type": "plain_text", "text": "x" * 25}}
    bad_open = client.views_open(trigger_id=emu.issue_trigger_id(ALICE), view=long_title)
    assert await error_of(bad_open) == "invalid_arguments"

    updated = await client.views_update(view_id=opened["id"], view=MODAL, hash=opened["hash"])
    assert updated["view"]["hash"] != opened["hash"]
    stale = client.views_update(view_id=opened["id"], view=MODAL, hash=opened["hash"])
    assert await error_of(stale) == "hash_conflict"
    assert await error_of(client.views_update(view_id="V0NOPE", view=MODAL)) == "not_found"

    home = {"type": "home", "blocks": [{"type": "actions", "elements": [button("run", "f1")]}]}
    await client.views_publish(user_id=BOB, view=home)
    assert emu.home_views[BOB]["blocks"][0]["elements"][0]["value"] == "f1"
    assert await error_of(client.views_publish(user_id=BOB, view=MODAL)) == "invalid_arguments"


async def test_rate_limit_and_failures(emu: SlackEmulator, client: AsyncWebClient) -> None:
    emu.set_rate_limit("chat.postMessage", per_channel_per_second=1)
    await client.chat_postMessage(channel="C0GENERAL", text="one")
    await client.chat_postMessage(channel=BOB, text="other channel is fine")
    with pytest.raises(SlackApiError) as info:
        await client.chat_postMessage(channel="C0GENERAL", text="two")
    assert info.value.response.status_code == 429
    assert int(info.value.response.headers["Retry-After"]) >= 1
    patient = AsyncWebClient(
        token=emu.bot_token,
        base_url=emu.api_url,
        retry_handlers=[AsyncRateLimitErrorRetryHandler(max_retry_count=2)],
    )
    await patient.chat_postMessage(channel="C0GENERAL", text="three")
    assert [m["text"] for m in emu.messages_in("C0GENERAL")] == ["one", "three"]
    assert emu.rate_limited_count == 2

    emu.fail_next("users.info", status=500)
    with pytest.raises(SlackApiError) as info:
        await client.users_info(user=ALICE)
    assert info.value.response.status_code == 500
    assert (await client.users_info(user=ALICE))["user"]["is_admin"] is True


async def test_directory(emu: SlackEmulator, client: AsyncWebClient) -> None:
    user = (await client.users_info(user="U0SOMEONE"))["user"]
    assert user["is_admin"] is False and user["tz"]
    emu.auto_users = False
    assert await error_of(client.users_info(user="U0NOBODY")) == "user_not_found"

    emu.set_channel_members("C0GENERAL", [f"U{i:04d}" for i in range(5)])
    pages, cursor = [], None
    while True:
        page = await client.conversations_members(channel="C0GENERAL", limit=2, cursor=cursor)
        pages.append(page["members"])
        cursor = page["response_metadata"]["next_cursor"]
        if not cursor:
            break
    assert pages == [["U0000", "U0001"], ["U0002", "U0003"], ["U0004"]]
    assert await error_of(client.conversations_members(channel="C0NOPE")) == "channel_not_found"

    opened = await client.conversations_open(users=BOB)
    assert opened["channel"]["id"] == emu.dm_channel(BOB)
    info = await client.conversations_info(channel="C0GENERAL")
    assert info["channel"]["name"] == "general"
    assert (await client.usergroups_users_list(usergroup="S0LEADS"))["users"] == [BOB]
    emu.set_usergroup_users("S0LEADS", [ALICE, BOB])
    assert (await client.usergroups_users_list(usergroup="S0LEADS"))["users"] == [ALICE, BOB]
    assert await error_of(client.usergroups_users_list(usergroup="S0NOPE")) == "no_such_subteam"


async def test_response_url(emu: SlackEmulator, client: AsyncWebClient) -> None:
    posted = await client.chat_postMessage(channel="C0GENERAL", text="approve?")
    url = emu.new_response_url(BOB, "C0GENERAL", posted["ts"])
    hook = AsyncWebhookClient(url)
    assert (await hook.send(text="you are not an approver")).status_code == 200
    assert (emu.last_ephemeral(BOB) or {}).get("text") == "you are not an approver"
    await hook.send(text="Approved", replace_original=True)
    assert emu.messages_in("C0GENERAL")[0]["text"] == "Approved"
    assert [p["id"] for p in emu.response_url_posts] == [url.rsplit("/", 1)[1]] * 2
    await hook.send(text="gone", delete_original=True)
    assert emu.messages_in("C0GENERAL") == []


# ------------------------------------------------------------------ driver


async def test_driver_slash(emu: SlackEmulator, bot: tuple[FakeBot, SlackDriver]) -> None:
    fake, driver = bot
    fake.answers.append({"text": "Usage: /flow help"})
    resp = await driver.slash(ALICE, "help")
    assert resp.status == 200 and resp.ok and resp.elapsed < 3
    body = fake.requests[0]["body"]
    assert body["command"] == "/flow" and body["text"] == "help" and body["user_id"] == ALICE
    assert body["channel_name"] == "general" and body["team_id"] == "T0TEAM"
    assert body["response_url"].startswith(emu.base_url)
    assert (emu.last_ephemeral(ALICE) or {}).get("text") == "Usage: /flow help"
    # the trigger id works for views.open exactly once
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    await client.views_open(trigger_id=body["trigger_id"], view=MODAL)
    with pytest.raises(SlackApiError):
        await client.views_open(trigger_id=body["trigger_id"], view=MODAL)

    stale = str(int(time.time()) - 600)
    raw = b"command=/flow&text=help"
    assert (await driver.post_raw(raw, driver.sign(raw, int(stale)))).status == 401
    tampered = driver.sign(raw)
    assert (await driver.post_raw(raw + b"x", tampered)).status == 401


async def test_driver_block_actions(emu: SlackEmulator, bot: tuple[FakeBot, SlackDriver]) -> None:
    fake, driver = bot
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    actions = {"type": "actions", "block_id": "act", "elements": [button("approve", "a1")]}
    await client.chat_postMessage(channel="C0GENERAL", text="approve?", blocks=[actions])
    message = emu.messages_in("C0GENERAL")[0]
    await driver.click(BOB, message, "approve")
    payload = fake.requests[-1]["body"]
    assert payload["type"] == "block_actions" and payload["user"]["id"] == BOB
    assert payload["actions"][0] | {"action_ts": "-"} == {
        "action_id": "approve",
        "block_id": "act",
        "value": "a1",
        "type": "button",
        "text": {"type": "plain_text", "text": "Go"},
        "action_ts": "-",
    }
    assert payload["container"]["message_ts"] == message["ts"]
    assert payload["message"]["ts"] == message["ts"] and payload["channel"]["id"] == "C0GENERAL"
    assert payload["trigger_id"] and payload["response_url"]
    await driver.block_action(BOB, "approve", retry=True)
    assert fake.requests[-1]["body"] == payload

    home = {"type": "home", "blocks": [{"type": "actions", "elements": [button("run", "f1")]}]}
    await client.views_publish(user_id=ALICE, view=home)
    await driver.click_home(ALICE, "run")
    payload = fake.requests[-1]["body"]
    assert payload["view"]["type"] == "home" and payload["actions"][0]["value"] == "f1"
    assert payload["container"] == {"type": "view", "view_id": emu.home_views[ALICE]["id"]}


async def test_driver_view_submission(emu: SlackEmulator, bot: tuple[FakeBot, SlackDriver]) -> None:
    fake, driver = bot
    client = AsyncWebClient(token=emu.bot_token, base_url=emu.api_url)
    trigger = emu.issue_trigger_id(ALICE)
    view_id = (await client.views_open(trigger_id=trigger, view=MODAL))["view"]["id"]
    with pytest.raises(ValueError, match="required"):
        await driver.fill_and_submit(ALICE, view_id, {"amount": "12"})

    fake.answers.append({"response_action": "errors", "errors": {"amount": "Too much"}})
    resp = await driver.fill_and_submit(ALICE, view_id, {"amount": "12", "kind": "food"})
    assert resp.json == {"response_action": "errors", "errors": {"amount": "Too much"}}
    assert resp.ok and view_id in emu.views
    view = fake.requests[-1]["body"]["view"]
    food = MODAL["blocks"][1]["element"]["options"][1]
    assert view["callback_id"] == "run_flow" and view["private_metadata"] == "flow-1"
    assert view["state"]["values"] == {
        "amount": {"v": {"type": "number_input", "value": "12"}},
        "kind": {"v": {"type": "static_select", "selected_option": food}},
        "who": {"v": {"type": "users_select", "selected_user": ALICE}},
    }

    await driver.click_in_view(ALICE, view_id, "more")
    assert fake.requests[-1]["body"]["container"] == {"type": "view", "view_id": view_id}

    fake.answers.append({"response_action": "push", "view": MODAL})
    await driver.view_submission(ALICE, view_id)
    pushed = emu.views[view_id]["stack"][-1]
    assert emu.views[view_id]["stack"] == [view_id, pushed]
    await driver.view_submission(ALICE, pushed)  # empty 200 closes the top view only
    assert list(emu.views) == [view_id]
    resp = await driver.fill_and_submit(ALICE, view_id, {"amount": "3", "kind": "Travel"})
    assert resp.ok and emu.views == {}


async def test_driver_events(emu: SlackEmulator, bot: tuple[FakeBot, SlackDriver]) -> None:
    fake, driver = bot
    await driver.event(driver.message_event(ALICE, "#general", "expense 12"))
    body, headers = fake.requests[-1]["body"], fake.requests[-1]["headers"]
    assert body["type"] == "event_callback" and body["event_id"].startswith("Ev")
    assert body["authorizations"][0]["user_id"] == "U0BOT"
    assert body["event"]["channel"] == "C0GENERAL" and body["event"]["channel_type"] == "channel"
    assert "X-Slack-Retry-Num" not in headers
    await driver.event(body["event"], event_id=body["event_id"], retry_num=1)
    retried = fake.requests[-1]
    assert retried["body"]["event_id"] == body["event_id"]
    assert retried["headers"]["X-Slack-Retry-Num"] == "1"
    assert retried["headers"]["X-Slack-Retry-Reason"] == "http_timeout"

    await driver.event(driver.reaction_event(BOB, "white_check_mark", "C0GENERAL", "1.000100"))
    assert fake.requests[-1]["body"]["event"]["item"]["ts"] == "1.000100"
    await driver.event(driver.member_joined_event("U0NEW", "C0GENERAL"))
    assert "U0NEW" in emu.channels["C0GENERAL"]["members"]
    await driver.event(driver.app_home_opened(ALICE))
    assert fake.requests[-1]["body"]["event"]["channel"] == emu.dm_channel(ALICE)
