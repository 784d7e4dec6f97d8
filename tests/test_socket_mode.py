"""SPEC §15, Socket Mode: with SLACK_APP_TOKEN the bot opens a WebSocket to Slack (the
emulator) and gets its slash commands, clicks and events there, acknowledging each
envelope on the socket; no public URL, no signing secret. It reconnects when the socket
drops and /healthz says how the socket is."""

from __future__ import annotations

import asyncio
import signal
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

from bot.app import Overrides, build
from bot.server import Server
from bot.settings import Settings
from bot.socket_mode import SocketModeRefused
from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from storage.embedded import free_port
from tests.support import (
    ALICE,
    BOB,
    BOT_TOKEN,
    ROOT,
    SECRET_KEY,
    BotHarness,
    answer_text,
    approval_dm,
    bot_env,
    create_flow,
    eventually,
    finished_run,
    first_reply,
    http_request,
    import_through_modal,
    make_settings,
    stop_bot,
    texts_in,
)

PING = 0.5  # seconds: a socket gone silent is replaced after 4 pings without an answer

APPROVAL = """
name: Laptop
steps:
  - id: ask
    type: approval
    approvers: ["<@U0BOB>"]
    title: "Laptop for {{ run.started_by }}"
  - {type: post_message, channel: "#general", text: "{{ steps.ask.outcome }}"}
"""


def socket_settings(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, **extra: Any
) -> Settings:
    values: dict[str, Any] = {
        "slack_signing_secret": None,
        "slack_app_token": emulator.socket_mode.app_token,
    }
    return make_settings(emulator, mongo_uri, db_name, **(values | extra))


@pytest.fixture
async def sbot(emulator: SlackEmulator, mongo_uri: str, db_name: str) -> AsyncIterator[BotHarness]:
    settings = socket_settings(emulator, mongo_uri, db_name)
    flowbot = build(settings, mongo_uri, Overrides(socket_ping_interval=PING))
    server = Server(flowbot, host="127.0.0.1", port=0)
    await server.start()
    harness = BotHarness(emulator, SlackDriver.over_socket(emulator), flowbot, server, settings)
    try:
        await emulator.socket_mode.wait_connected()
        yield harness
    finally:
        await stop_bot(harness)


async def health(bot: BotHarness) -> dict[str, Any]:
    status, _, body = await http_request("GET", bot.url + "/healthz")
    assert status == 200, body
    assert isinstance(body, dict)
    return body


async def socket_state(bot: BotHarness) -> str:
    return str((await health(bot))["socket"])


# ------------------------------------------------------------------ the three kinds of request


async def test_a_slash_command_arrives_over_the_socket_and_is_acknowledged(
    sbot: BotHarness,
) -> None:
    socket = sbot.emulator.socket_mode
    assert socket.opened == 1 and [c.number for c in socket.open_connections] == [1]
    reply = await first_reply(sbot, ALICE, "help")
    assert "/flow" in answer_text(reply)
    [ack] = [a for a in socket.acks if a.type == "slash_commands"]
    assert ack.elapsed < 3
    assert (await health(sbot))["socket"] == "connected"
    # Without a signing secret nothing is accepted over HTTP: it could not be verified.
    status, _, body = await http_request("POST", sbot.url + "/slack/events", data="x=1")
    assert status == 404 and body["error"] == "socket_mode_only"


async def test_a_modal_submission_is_answered_in_the_ack(sbot: BotHarness) -> None:
    response = await import_through_modal(sbot, ALICE, "name: [unclosed")
    assert response.ok, response
    body = response.json or {}
    assert body.get("response_action") == "errors" and body["errors"], body
    # The emulator recorded the acknowledgement with its payload.
    last = sbot.emulator.socket_mode.acks[-1]
    assert last.type == "interactive" and last.payload == body


async def test_a_click_resumes_a_run(sbot: BotHarness) -> None:
    flow = await create_flow(sbot, APPROVAL)
    assert (await sbot.driver.slash(ALICE, "run Laptop")).ok
    message = await approval_dm(sbot, BOB, "Laptop for")
    click = await sbot.driver.click(BOB, message, "approval:Approve")
    assert click.ok and click.elapsed < 3
    [run] = await finished_run(sbot, flow.id)
    assert run.status == "succeeded", run.error
    assert texts_in(sbot, "#general")[-1] == "approved"
    assert any(a.type == "interactive" for a in sbot.emulator.socket_mode.acks)


async def test_an_event_arrives_over_the_socket(sbot: BotHarness) -> None:
    response = await sbot.driver.event(sbot.driver.app_home_opened(ALICE))
    assert response.ok
    await eventually(lambda: ALICE in sbot.emulator.home_views)
    [envelope] = [e for e in sbot.emulator.socket_mode.envelopes if e["type"] == "events_api"]
    assert envelope["accepts_response_payload"] is False
    assert envelope["envelope_id"] in {a.envelope_id for a in sbot.emulator.socket_mode.acks}


# ------------------------------------------------------------------ the socket comes and goes


async def test_the_bot_reconnects_after_the_socket_is_closed(sbot: BotHarness) -> None:
    socket = sbot.emulator.socket_mode
    await socket.drop()
    await socket.wait_connected(count=2)
    assert socket.opened == 2
    assert "/flow" in answer_text(await first_reply(sbot, ALICE, "help"))
    assert await socket_state(sbot) == "connected"


async def test_the_bot_reconnects_when_the_network_dies(sbot: BotHarness) -> None:
    socket = sbot.emulator.socket_mode
    await socket.drop(abort=True)  # no close frame: only unanswered pings tell
    await socket.wait_connected(count=2, timeout=15)
    assert "/flow" in answer_text(await first_reply(sbot, ALICE, "help"))


async def test_the_bot_reconnects_when_slack_asks_it_to(sbot: BotHarness) -> None:
    socket = sbot.emulator.socket_mode
    await socket.refresh()  # Slack's {"type": "disconnect", "reason": "refresh_requested"}
    await socket.wait_connected(count=2)
    assert "/flow" in answer_text(await first_reply(sbot, ALICE, "help"))


async def test_healthz_shows_connecting_while_slack_is_away(sbot: BotHarness) -> None:
    socket = sbot.emulator.socket_mode
    socket.enabled = False  # apps.connections.open fails: no new socket for now
    await socket.drop()
    await eventually(lambda: _is(socket_state(sbot), "connecting"))
    body = await health(sbot)
    assert body["status"] == "ok" and body["db"] == "ok"  # the bot itself is fine
    socket.enabled = True
    await socket.wait_connected(count=2, timeout=15)
    await eventually(lambda: _is(socket_state(sbot), "connected"))


async def _is(state: Any, wanted: str) -> bool:
    return bool(await state == wanted)


async def test_healthz_says_off_in_http_mode(bot: BotHarness) -> None:
    assert (await health(bot))["socket"] == "off"


# ------------------------------------------------------------------ a wrong token


async def test_a_refused_app_token_stops_the_start_with_one_line(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> None:
    settings = socket_settings(emulator, mongo_uri, db_name, slack_app_token="xapp-1-wrong")
    flowbot = build(settings, mongo_uri)
    server = Server(flowbot, host="127.0.0.1", port=0)
    with pytest.raises(SocketModeRefused) as refused:
        await server.start()
    await server.stop()
    message = str(refused.value)
    assert "\n" not in message and "SLACK_APP_TOKEN" in message and "invalid_auth" in message
    assert "xapp-1-wrong" not in message  # the secret is never shown
    assert emulator.socket_mode.open_connections == []


def test_a_bot_token_is_not_an_app_token() -> None:
    from bot.settings import SettingsError, load_settings

    with pytest.MonkeyPatch.context() as env:
        env.setenv("SLACK_APP_TOKEN", "xoxb-123")
        with pytest.raises(SettingsError, match=r"SLACK_APP_TOKEN.*xapp-"):
            load_settings()


# ------------------------------------------------------------------ as `python -m bot`


def socket_env(emulator: SlackEmulator, mongo_uri: str, db_name: str, app_token: str) -> dict:
    return bot_env(
        strip=("SLACK_", "MONGODB_", "FLOWBOT_"),
        SLACK_BOT_TOKEN=BOT_TOKEN,
        SLACK_APP_TOKEN=app_token,
        SLACK_API_URL=emulator.api_url,
        MONGODB_URI=mongo_uri,
        MONGODB_DB=db_name,
        FLOWBOT_SECRET_KEY=SECRET_KEY,
        PORT=str(free_port()),
        LOG_LEVEL="INFO",
    )


async def test_python_m_bot_serves_slack_over_the_socket(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    env = socket_env(emulator, mongo_uri, db_name, emulator.socket_mode.app_token)
    log = tmp_path / "bot.log"
    with log.open("w") as stderr:
        process = await asyncio.create_subprocess_exec(
            sys.executable, "-m", "bot", env=env, cwd=ROOT, stderr=stderr, start_new_session=True
        )
    try:
        await emulator.socket_mode.wait_connected(timeout=60)
        async with SlackDriver.over_socket(emulator) as driver:
            response = await driver.slash(ALICE, "help")
            assert response.ok, response
        await eventually(lambda: emulator.last_ephemeral(ALICE))
    finally:
        process.send_signal(signal.SIGINT)
        assert await asyncio.wait_for(process.wait(), 30) == 0
    text = log.read_text()
    assert "Slack: Socket Mode" in text and "Socket Mode: connected to Slack" in text
    assert "Traceback" not in text and "ERROR" not in text, text
    assert not [line for line in text.splitlines() if " WARNING bot" in line], text
    assert emulator.socket_mode.app_token not in text


async def test_python_m_bot_with_a_refused_token_exits_with_one_line(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> None:
    env = socket_env(emulator, mongo_uri, db_name, "xapp-1-revoked")
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-m",
        "bot",
        env=env,
        cwd=ROOT,
        stdout=asyncio.subprocess.DEVNULL,
        stderr=asyncio.subprocess.PIPE,
    )
    _, stderr = await asyncio.wait_for(process.communicate(), 60)
    assert process.returncode != 0
    last = stderr.decode().strip().splitlines()[-1]
    assert last.startswith("flowbot: SLACK_APP_TOKEN was refused by Slack (invalid_auth")
    assert "Traceback" not in stderr.decode() and "xapp-1-revoked" not in stderr.decode()
