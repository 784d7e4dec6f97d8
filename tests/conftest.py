"""Real parts for every test: the embedded database, the Slack emulator, the bot over HTTP."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass

import pytest

from bot.app import Flowbot, build
from bot.server import Server
from bot.settings import Settings
from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from storage.embedded import EmbeddedMongo

SIGNING_SECRET = "test-signing-secret"
BOT_TOKEN = "xoxb-test"
TEAM = "T0TEAM"
ALICE, BOB, CAROL, DAVE, ADMIN = "U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0ADMIN"


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


def make_settings(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, **extra: object
) -> Settings:
    values: dict[str, object] = {
        "slack_bot_token": BOT_TOKEN,
        "slack_signing_secret": SIGNING_SECRET,
        "slack_api_url": emulator.api_url,
        "mongodb_uri": mongo_uri,
        "mongodb_db": db_name,
        "port": 0,
        "flowbot_secret_key": "Zm9vYmFyYmF6cXV4Zm9vYmFyYmF6cXV4Zm9vYmFyYmE=",
    }
    values.update(extra)
    return Settings.model_validate(values)


@dataclass
class BotHarness:
    emulator: SlackEmulator
    driver: SlackDriver
    flowbot: Flowbot
    server: Server
    settings: Settings

    @property
    def url(self) -> str:
        return self.server.url

    @property
    def db(self):  # type: ignore[no-untyped-def]
        return self.flowbot.storage.db


@pytest.fixture
async def bot(emulator: SlackEmulator, mongo_uri: str, db_name: str) -> AsyncIterator[BotHarness]:
    settings = make_settings(emulator, mongo_uri, db_name)
    flowbot = build(settings, mongo_uri)
    server = Server(flowbot, host="127.0.0.1", port=0)
    await server.start()
    driver = SlackDriver(server.url + "/slack/events", SIGNING_SECRET, emulator)
    try:
        yield BotHarness(emulator, driver, flowbot, server, settings)
    finally:
        await driver.close()
        await server.stop()
