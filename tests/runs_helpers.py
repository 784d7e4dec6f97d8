"""Helpers shared by the tests/test_runs_*.py files (real parts; flows made through the
catalog as `/flow new` would)."""

from __future__ import annotations

import asyncio
import time
from typing import Any

from flows.catalog import FlowCatalog
from flows.definition import parse_definition
from flows.records import FlowRecord, RunRecord
from flows.runner import Runner
from storage.runs_repo import from_doc
from tests.conftest import ALICE, TEAM, BotHarness


def catalog(bot: BotHarness) -> FlowCatalog:
    assert bot.flowbot.deps.catalog is not None
    return bot.flowbot.deps.catalog


def runner(bot: BotHarness) -> Runner:
    assert bot.flowbot.deps.runner is not None
    return bot.flowbot.deps.runner


async def create_flow(bot: BotHarness, yaml_text: str, user: str = ALICE) -> FlowRecord:
    result = await catalog(bot).create(TEAM, user, parse_definition(yaml_text))
    return result.flow


async def runs_of(bot: BotHarness, flow_id: str) -> list[RunRecord]:
    cursor = bot.db["runs"].find({"flow_id": flow_id}).sort("created_at", 1)
    return [from_doc(doc) async for doc in cursor]


async def wait_for(predicate: Any, timeout: float = 15.0, interval: float = 0.05) -> Any:
    """Poll an async or sync predicate until it returns something truthy."""
    deadline = time.monotonic() + timeout
    while True:
        value = predicate()
        if asyncio.iscoroutine(value):
            value = await value
        if value:
            return value
        if time.monotonic() > deadline:
            raise AssertionError(f"timed out after {timeout}s waiting for {predicate}")
        await asyncio.sleep(interval)


async def finished_run(bot: BotHarness, flow_id: str, count: int = 1) -> list[RunRecord]:
    async def done() -> list[RunRecord] | None:
        runs = await runs_of(bot, flow_id)
        return runs if len(runs) >= count and all(r.finished for r in runs) else None

    result: list[RunRecord] = await wait_for(done)
    return result


def texts_in(bot: BotHarness, channel: str) -> list[str]:
    return [m["text"] for m in bot.emulator.messages_in(channel)]
