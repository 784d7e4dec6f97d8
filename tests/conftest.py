"""Real parts for every test: the embedded database, the Slack emulator, the bot over HTTP.
The helpers the tests share are in tests/support.py."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator

import pytest
from aiohttp import web

from emulator.server import SlackEmulator
from storage.embedded import EmbeddedMongo
from tests.support import (
    ADMIN,
    ALICE,
    BOB,
    BOT_TOKEN,
    CAROL,
    DAVE,
    JSON,
    TEAM,
    BotHarness,
    local_http_server,
    running_bot,
)


@pytest.fixture(scope="session")
def mongo() -> Iterator[EmbeddedMongo]:
    """One embedded server per test session; each test gets its own database in it."""
    uri = os.environ.get("FLOWBOT_TEST_MONGODB_URI")
    server = EmbeddedMongo(":memory:")
    if uri:
        yield server  # pragma: no cover - an operator pointed tests at a real MongoDB
        return
    server.start()
    yield server
    server.stop()


@pytest.fixture
def mongo_uri(mongo: EmbeddedMongo) -> str:
    return os.environ.get("FLOWBOT_TEST_MONGODB_URI") or mongo.uri


@pytest.fixture
def db_name() -> str:
    return f"t_{uuid.uuid4().hex[:16]}"


@pytest.fixture
async def emulator() -> AsyncIterator[SlackEmulator]:
    slack = SlackEmulator(bot_token=BOT_TOKEN, team_id=TEAM)
    slack.add_user(ALICE, "alice")
    slack.add_user(BOB, "bob")
    slack.add_user(CAROL, "carol")
    slack.add_user(DAVE, "dave")
    slack.add_user(ADMIN, "admin", is_admin=True)
    slack.add_channel("C0GENERAL", "general", members=[ALICE, BOB, CAROL, DAVE])
    slack.add_channel("C0FINANCE", "finance", members=[ALICE, BOB])
    slack.add_usergroup("S0LEADS", "leads", users=[BOB])
    await slack.start()
    yield slack
    await slack.stop()


@pytest.fixture
async def bot(emulator: SlackEmulator, mongo_uri: str, db_name: str) -> AsyncIterator[BotHarness]:
    async with running_bot(emulator, mongo_uri, db_name) as harness:
        yield harness


@pytest.fixture
async def http_bot(
    emulator: SlackEmulator, mongo_uri: str, db_name: str
) -> AsyncIterator[BotHarness]:
    """The bot, allowed to reach servers on 127.0.0.1 (FLOWBOT_ALLOWED_HTTP_HOSTS)."""
    async with running_bot(
        emulator, mongo_uri, db_name, flowbot_allowed_http_hosts="127.0.0.1"
    ) as harness:
        yield harness


@pytest.fixture
async def ledger() -> AsyncIterator[tuple[str, list[JSON]]]:
    """A stand-in for the ledger API the expense template posts approved expenses to: its
    base URL, and what it was sent."""
    seen: list[JSON] = []

    async def handle(request: web.Request) -> web.Response:
        seen.append(
            {
                "path": request.path,
                "auth": request.headers.get("Authorization"),
                "json": await request.json(),
            }
        )
        return web.json_response({"id": f"EXP-{len(seen)}"}, status=201)

    async with local_http_server(handle, "POST", "/api/expenses") as url:
        yield f"{url}/api", seen
