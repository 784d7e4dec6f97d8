"""Approvals: memory with many runs waiting on an approval, and click-to-resume latency.

The bot runs as `python -m bot` (a child process, so that its RSS is its own: the emulator
keeps every message in this process). Runs are started with signed `/flow run` commands,
each asking one of 20 approvers; when all wait, the bot's VmRSS is compared with its VmRSS
before they were started. Then approvals are clicked one at a time (signed block actions):
the time from sending the click to the emulator receiving the resumed run's next call (its
post after the approval) is compared with the acknowledgement time of the same clicks.
"""

from __future__ import annotations

import asyncio
import re
import time
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web
from motor.motor_asyncio import AsyncIOMotorClient

from bench.common import (
    ALICE,
    GENERAL,
    SIGNING_SECRET,
    Child,
    Env,
    Section,
    bot_environ,
    import_flow,
    make_emulator,
    percentile,
    rss_mib,
    say,
    wait_until,
)
from emulator.driver import SlackDriver
from emulator.server import SlackEmulator

NAME = "approvals"
TITLE = "Approvals"

FLOW = f"""\
name: BenchApproval
inputs:
  - {{id: approver, type: text, required: true}}
steps:
  - id: ask
    type: approval
    approvers: ["<@{{{{ inputs.approver }}}}>"]
    title: "Bench {{{{ run.id }}}}"
  - {{id: after, type: post_message, channel: "{GENERAL}", text: "after {{{{ run.id }}}}"}}
"""
APPROVERS = [f"U0APPR{i:02d}" for i in range(20)]
AFTER = re.compile(rb"after (R[0-9a-f]+)")


class PostClock:
    """An emulator middleware: when each "after <run id>" post arrives (perf_counter)."""

    def __init__(self) -> None:
        self.waiting: dict[str, asyncio.Future[float]] = {}

    def expect(self, run_id: str) -> asyncio.Future[float]:
        future: asyncio.Future[float] = asyncio.get_running_loop().create_future()
        self.waiting[run_id] = future
        return future

    @web.middleware
    async def middleware(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        if not (self.waiting and request.path.endswith("/chat.postMessage")):
            return await handler(request)
        arrived = time.perf_counter()
        # The body is read once the emulator's handler has parsed it (reading it here
        # first would leave a multipart form empty for the handler: channel_not_found).
        response = await handler(request)
        json_body = request.content_type == "application/json"
        params = await (request.json() if json_body else request.post())  # parsed: kept
        match = AFTER.search(str(params.get("text", "")).encode())
        future = self.waiting.pop(match.group(1).decode(), None) if match else None
        if future is not None and not future.done():
            future.set_result(arrived)
        return response


async def _settle(emulator: SlackEmulator, quiet: float = 1.0, timeout: float = 120) -> None:
    """Wait until the bot has made no Slack call for `quiet` seconds."""
    deadline = time.monotonic() + timeout
    seen = -1
    while time.monotonic() < deadline and seen != len(emulator.calls):
        seen = len(emulator.calls)
        await asyncio.sleep(quiet)


def _message(emulator: SlackEmulator, channel: str, ts: str) -> dict[str, Any]:
    return next(m for m in emulator.messages.get(channel, []) if m["ts"] == ts)


async def run(env: Env) -> Section:
    section = Section(NAME, TITLE)
    waiting_runs, clicks = env.size(1_000, 200), env.size(100, 30)
    emulator = make_emulator()
    for user in APPROVERS:
        emulator.add_user(user)
    clock = PostClock()
    emulator.app.middlewares.append(clock.middleware)
    await emulator.start()
    db_name = env.db_name(NAME)
    environ = bot_environ(emulator, env, db_name)
    bot = Child("bot-approvals", "bot", environ, env.workdir)
    session = aiohttp.ClientSession(connector=aiohttp.TCPConnector(limit=0))
    mongo: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(env.mongo.uri, tz_aware=True)
    db = mongo[db_name]
    try:
        await import_flow(environ, env.workdir, FLOW)
        await bot.start()
        driver = SlackDriver(bot.url + "/slack/events", SIGNING_SECRET, emulator, session)
        gate = asyncio.Semaphore(50)  # as many commands in flight as people typing at once

        async def start_runs(first: int, count: int, waiting: int) -> None:
            """Start `count` runs; return when `waiting` runs wait and the bot is quiet."""

            async def one(i: int) -> None:
                async with gate:
                    approver = APPROVERS[i % len(APPROVERS)]
                    response = await driver.slash(ALICE, f"run BenchApproval approver={approver}")
                    if not response.ok:
                        raise RuntimeError(f"/flow run failed: {response.error}")

            await asyncio.gather(*(one(i) for i in range(first, first + count)))

            async def all_waiting() -> bool:
                return await db["runs"].count_documents({"status": "waiting"}) >= waiting

            if not await wait_until(all_waiting, timeout=300, interval=0.5):
                raise RuntimeError(f"{waiting} runs did not all reach their approval")
            await _settle(emulator)

        async def click(approval: dict[str, Any]) -> tuple[float, float]:
            """(ack, click to the resumed run's post) in seconds."""
            sent = approval["messages"][0]
            message = _message(emulator, sent["channel"], sent["ts"])
            posted = clock.expect(approval["run_id"])
            start = time.perf_counter()
            response = await driver.click(sent["approver"], message, "approval:Approve")
            if not response.ok:
                raise RuntimeError(f"click failed: {response.error}")
            return response.elapsed, await asyncio.wait_for(posted, 30) - start

        # Warm-up: imports, caches and connections of the whole path, then the baseline.
        await start_runs(0, 10, 10)
        async for approval in db["approvals"].find({"status": "pending"}):
            await click(approval)
        await _settle(emulator)
        before = rss_mib(bot.pid)
        say(f"bot RSS {before:.1f} MiB; starting {waiting_runs} runs that wait on approvals")
        started = time.perf_counter()
        # In batches, the bot settling in between: the first batch shows the one-time
        # growth of a process that served a burst, the others what each waiting run costs.
        batch = waiting_runs // 5
        after_first = before
        for first in range(0, waiting_runs, batch):
            await start_runs(10 + first, batch, first + batch)
            if first == 0:
                after_first = rss_mib(bot.pid)
        say(f"{waiting_runs} runs waiting after {time.perf_counter() - started:.1f} s")
        after = rss_mib(bot.pid)
        section.add(
            f"bot RSS with {waiting_runs:,} runs waiting", after, before, "MiB", "RSS before them"
        )
        section.add("RSS per waiting run", (after - before) * 1024 / waiting_runs, None, "KiB")
        section.add(
            f"RSS per waiting run after the first {batch}",
            (after - after_first) * 1024 / (waiting_runs - batch),
            None,
            "KiB",
        )
        acks, resumes = [], []
        pending = db["approvals"].find({"status": "pending"}).limit(clicks)
        async for approval in pending:
            ack, resumed = await click(approval)
            acks.append(ack)
            resumes.append(resumed)
        for q in (50, 99):
            section.add(
                f"click to resumed run's post p{q}",
                percentile(resumes, q) * 1000,
                percentile(acks, q) * 1000,
                "ms",
                "ack of the same clicks",
            )
        section.note(
            f"bot in a child process (`python -m bot`); {waiting_runs:,} runs started with"
            f" signed `/flow run` (50 at a time, in 5 batches), 20 approvers; {len(resumes)}"
            " approvals clicked one at a time while the others wait; RSS from"
            " /proc/<pid>/status after the bot went quiet for 1 s."
        )
    finally:
        mongo.close()
        await session.close()
        await bot.stop()
        await emulator.stop()
    return section
