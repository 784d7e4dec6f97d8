"""Throughput of a three-step instant flow (a post, a condition, a post in its branch), end
to end: N runs started at once until all have finished. MongoDB round trips (every command
of the runs, pymongo command monitoring; reads made on a timer for all runs, the waker's
polls and the failure-streak batch, are reported apart) and Slack calls (the emulator's
log) per run.

Baseline: N pairs of raw `chat.postMessage` through the bot's own AsyncWebClient to the
emulator, also all at once: the cost of the Slack calls alone. The bot is built in this
process (`bot.app.build`) so that its MongoDB client can be monitored.
"""

from __future__ import annotations

import asyncio
import time

from slack_sdk.web.async_client import AsyncWebClient

from bench.common import (
    ALICE,
    BACKGROUND_FIND,
    GENERAL,
    TEAM,
    Env,
    Section,
    command_counter,
    cpu_seconds,
    make_emulator,
    say,
    settings_for,
    three_step_flow,
)
from bot.app import build
from flows.definition import parse_definition
from flows.records import FlowRecord, RunTrigger
from flows.runner import Runner

NAME = "throughput"
TITLE = "Run throughput"

FLOW = three_step_flow("Bench throughput")


async def _runs(runner: Runner, flow: FlowRecord, n: int) -> tuple[float, list[str]]:
    start = time.perf_counter()
    runs = await asyncio.gather(
        *(runner.start_run(flow, RunTrigger(type="manual")) for _ in range(n))
    )
    await asyncio.gather(*(runner.wait_for(run.id) for run in runs))
    return time.perf_counter() - start, [run.id for run in runs]


async def _pairs(client: AsyncWebClient, n: int) -> float:
    async def pair(i: int) -> None:
        for which in ("first", "second"):
            await client.chat_postMessage(channel=GENERAL, text=f"{which} {i}", unfurl_links=False)

    start = time.perf_counter()
    await asyncio.gather(*(pair(i) for i in range(n)))
    return time.perf_counter() - start


async def run(env: Env) -> Section:
    section = Section(NAME, TITLE)
    # 400 runs a round keep the embedded database under ~10,000 writes, past which its
    # writes slow down for good (see README).
    n, rounds = env.size(400, 100), env.size(3, 2)
    counter = command_counter()  # before build(): the bot's client must report to it
    emulator = make_emulator()
    await emulator.start()
    flowbot = build(settings_for(emulator, env, env.db_name(NAME)), env.mongo.uri)
    runner, catalog = flowbot.deps.runner, flowbot.deps.catalog
    assert runner is not None and catalog is not None
    try:
        await flowbot.start()
        flow = (await catalog.create(TEAM, ALICE, parse_definition(FLOW))).flow
        await _runs(runner, flow, 20)  # warm-up
        await _pairs(flowbot.deps.client, 20)
        run_time = pair_time = 0.0
        # CPU seconds used by this process (bot and emulator) and by the database server.
        assert env.mongo.process is not None
        db_pid = env.mongo.process.pid
        cpu = {"runs": [0.0, 0.0], "pairs": [0.0, 0.0]}
        commands: dict[str, int] = {}
        slack_calls = 0
        run_ids: list[str] = []

        async def bot_round(n: int) -> float:
            nonlocal slack_calls
            calls_before = len(emulator.calls)
            counter.take()
            counter.active = True
            elapsed, ids = await _runs(runner, flow, n)
            counter.active = False
            run_ids.extend(ids)
            slack_calls += len(emulator.calls) - calls_before
            for name, count in counter.take().items():
                commands[name] = commands.get(name, 0) + count
            return elapsed

        for i in range(rounds):
            for side in ("pairs", "runs") if i % 2 == 0 else ("runs", "pairs"):
                cpu_before = cpu_seconds(), cpu_seconds(db_pid)
                if side == "pairs":
                    pair_time += await _pairs(flowbot.deps.client, n)
                else:
                    run_time += await bot_round(n)
                cpu[side][0] += cpu_seconds() - cpu_before[0]
                cpu[side][1] += cpu_seconds(db_pid) - cpu_before[1]
            say(f"round {i + 1}/{rounds} done")
        total = n * rounds
        succeeded = await flowbot.storage.db["runs"].count_documents(
            {"_id": {"$in": run_ids}, "status": "succeeded"}
        )
        section.add(
            "3-step flow, end to end",
            total / run_time,
            total / pair_time,
            "runs/s",
            "raw chat.postMessage pairs, same client",
            higher_is_better=True,
        )
        background = commands.pop(BACKGROUND_FIND, 0)
        section.add(
            "MongoDB round trips per run",
            sum(commands.values()) / total,
            None,
            "",
            "none (raw posts use no database)",
        )
        section.add("Slack calls per run", slack_calls / total, 2, "", "2 posts per pair")
        per_run = ", ".join(f"{k} {v / total:.2f}" for k, v in sorted(commands.items()))
        section.note(
            f"{n} runs (or pairs) at once, {rounds} interleaved rounds per side;"
            f" {succeeded}/{total} runs succeeded; round trips per run by command: {per_run}"
            f"; and per run, {background / total:.3f} reads made on a timer for all runs"
            " (the waker's polls, the failure-streak batch), not counted above. CPU per run:"
            f" {cpu['runs'][0] / total * 1000:.1f} ms in the bot's process (bot and emulator),"
            f" {cpu['runs'][1] / total * 1000:.1f} ms in the database; per raw pair:"
            f" {cpu['pairs'][0] / total * 1000:.1f} ms and {cpu['pairs'][1] / total * 1000:.1f} ms."
        )
    finally:
        await flowbot.stop()
        await emulator.stop()
    return section
