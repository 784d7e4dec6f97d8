"""Helpers for the sharing tests (no tests here): flows made through the real catalog,
slash commands over signed HTTP, waiting for the bot's answers after it acknowledged."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable
from typing import Any, TypeVar

from emulator.server import texts
from flows.catalog import FlowCatalog
from flows.definition import parse_definition
from flows.records import FlowRecord
from flows.sharing import SharingService
from tests.conftest import ALICE, TEAM, BotHarness

T = TypeVar("T")
JSON = dict[str, Any]

INSTANT = """
name: Expenses
kind: instant
description: File an expense
steps:
  - type: post_message
    channel: "#finance"
    text: "Expense filed by <@{{ run.started_by }}>"
"""

SCHEDULED = """
name: Nightly
kind: scheduled
trigger: {type: schedule, cron: "0 3 * * *", timezone: UTC}
steps:
  - type: post_message
    channel: "#general"
    text: "Nightly report"
"""


def catalog(bot: BotHarness) -> FlowCatalog:
    assert bot.flowbot.deps.catalog is not None
    return bot.flowbot.deps.catalog


def sharing(bot: BotHarness) -> SharingService:
    assert bot.flowbot.deps.sharing is not None
    return bot.flowbot.deps.sharing


async def create(bot: BotHarness, text: str = INSTANT, user: str = ALICE) -> FlowRecord:
    return (await catalog(bot).create(TEAM, user, parse_definition(text))).flow


async def reload(bot: BotHarness, flow: FlowRecord) -> FlowRecord | None:
    return await sharing(bot).flows.get(TEAM, flow.id)


def user_mention(user: str) -> str:
    return f"<@{user}|{user[2:].lower()}>"


def group_mention(group: str) -> str:
    return f"<!subteam^{group}|@{group[2:].lower()}>"


def channel_mention(channel: str) -> str:
    return f"<#{channel}|{channel[2:].lower()}>"


async def eventually(check: Callable[[], T | None], timeout: float = 5.0) -> T:
    """The first truthy result of `check`, polled: the bot answers after acknowledging."""
    deadline = time.monotonic() + timeout
    while True:
        result = check()
        if result:
            return result
        if time.monotonic() > deadline:
            raise AssertionError("the expected result did not come in time")
        await asyncio.sleep(0.02)


async def until(check: Callable[[], Awaitable[T | None]], timeout: float = 5.0) -> T | None:
    """Poll an async check until it gives something truthy; its last result otherwise."""
    deadline = time.monotonic() + timeout
    while True:
        result = await check()
        if result or time.monotonic() > deadline:
            return result
        await asyncio.sleep(0.03)


def all_text(obj: Any) -> str:
    if isinstance(obj, dict) and "blocks" in obj:
        return "\n".join([str(obj.get("text", "")), *texts(obj["blocks"])])
    return "\n".join(texts(obj))


async def slash(bot: BotHarness, user: str, text: str, channel: str = "C0GENERAL") -> JSON:
    """`/flow text` by `user`; the first ephemeral answer that follows (acks included)."""
    since = len(bot.emulator.ephemerals)
    response = await bot.driver.slash(user, text, channel=channel)
    assert response.ok, response
    return await eventually(
        lambda: next((e for e in bot.emulator.ephemerals[since:] if e["user"] == user), None)
    )


def dms(bot: BotHarness, user: str) -> list[JSON]:
    return list(bot.emulator.messages.get(bot.emulator.dm_channel(user), []))


def dm_containing(bot: BotHarness, user: str, contains: str) -> JSON | None:
    hits = [m for m in dms(bot, user) if contains in all_text(m)]
    return hits[-1] if hits else None


async def wait_dm(bot: BotHarness, user: str, contains: str) -> JSON:
    return await eventually(lambda: dm_containing(bot, user, contains))


async def settle(seconds: float = 0.3) -> None:
    """Give the bot time to do what it should NOT do before checking it did not."""
    await asyncio.sleep(seconds)
