"""Acknowledgement latency of signed `/flow help` and `/flow run` at 50 and 200 concurrent
requests, against a bare Bolt app that only acknowledges (bench/bare_app.py).

Both servers are child processes (`python -m bot`, `python -m bench.bare_app`) on the same
stack; this process generates the load and plays Slack (the emulator). Rounds alternate
between the two (bare, bot, bot, bare, …) so drift on the machine hits both alike.
"""

from __future__ import annotations

import asyncio
import gc
import time
from collections.abc import Sequence
from urllib.parse import urlencode

import aiohttp

from bench.common import (
    ALICE,
    GENERAL,
    SIGNING_SECRET,
    Child,
    Env,
    Section,
    bot_environ,
    cpu_seconds,
    import_flow,
    make_emulator,
    percentile,
    say,
    wait_until,
)
from emulator.driver import FORM, USER_AGENT, VERIFICATION_TOKEN, DriverResponse, SlackDriver
from emulator.server import SlackEmulator

NAME = "ack"
TITLE = "Acknowledgement latency"

# The simplest instant flow: no inputs, one step that makes no Slack call.
INSTANT = """\
name: Bench ack
steps:
  - {id: note, type: set_variable, name: done, value: "yes"}
"""
COMMANDS = (("help", "/flow help"), ("run Bench ack", "/flow run"))
CONCURRENCY = (50, 200)
# A round starts once every process is quiet: over QUIET_WINDOW seconds, each used less
# than QUIET_SHARE of a CPU (twice in a row), or after QUIET_TIMEOUT seconds anyway.
QUIET_WINDOW = 0.1
QUIET_SHARE = 0.1
QUIET_TIMEOUT = 10.0


async def wait_quiet(pids: Sequence[int | str]) -> float:
    """Wait until the bot, the bare app, the database and this process (load generator,
    emulator) are all idle, so that no round pays for the work a previous one left behind
    (runs being finished and recorded, answers being posted, the database catching up).
    Returns the seconds waited."""
    started = time.monotonic()
    calm = 0
    while calm < 2 and time.monotonic() - started < QUIET_TIMEOUT:
        before = [cpu_seconds(pid) for pid in pids]
        await asyncio.sleep(QUIET_WINDOW)
        used = [cpu_seconds(pid) - b for pid, b in zip(pids, before, strict=True)]
        calm = calm + 1 if max(used) < QUIET_SHARE * QUIET_WINDOW else 0
    return time.monotonic() - started


async def _slash(driver: SlackDriver, emulator: SlackEmulator, text: str) -> DriverResponse:
    """The signed form `SlackDriver.slash` sends, without applying the answer to the
    emulator afterwards: that client-side work (parsing the help card's blocks) would be
    timed against the bot only, since the bare app answers with an empty body."""
    form = {
        "token": VERIFICATION_TOKEN,
        "team_id": emulator.team_id,
        "team_domain": emulator.team_domain,
        "channel_id": GENERAL,
        "channel_name": "general",
        "user_id": ALICE,
        "user_name": "alice",
        "command": "/flow",
        "text": text,
        "api_app_id": emulator.app_id,
        "is_enterprise_install": "false",
        "response_url": emulator.new_response_url(ALICE, GENERAL),
        "trigger_id": emulator.issue_trigger_id(ALICE),
    }
    body = urlencode(form).encode()
    headers = {"Content-Type": FORM, "User-Agent": USER_AGENT, **driver.sign(body)}
    return await driver.post_raw(body, headers)


async def _round(
    driver: SlackDriver, emulator: SlackEmulator, n: int, text: str, *, drain: bool
) -> list[float]:
    """`n` commands at once; their acknowledgement times in seconds. `drain`: wait for the
    runs they started to answer."""
    answers_before = len(emulator.response_url_posts)
    responses = await asyncio.gather(*(_slash(driver, emulator, text) for _ in range(n)))
    failed = [r for r in responses if r.status != 200]
    if failed:
        raise RuntimeError(f"{len(failed)} of {n} `/flow {text}` failed: HTTP {failed[0].status}")
    if drain:
        # Let the runs finish (each answers "started" and its result through response_url)
        # so that their work does not spill into the next round.
        done = await wait_until(
            lambda: len(emulator.response_url_posts) >= answers_before + 2 * n, timeout=120
        )
        if not done:
            raise RuntimeError("the runs of a round did not all finish within 120 s")
    return [r.elapsed for r in responses]


async def run(env: Env) -> Section:
    section = Section(NAME, TITLE)
    rounds = env.size(8, 2)
    emulator = make_emulator()
    await emulator.start()
    environ = bot_environ(emulator, env, env.db_name(NAME))
    bot = Child("bot-ack", "bot", environ, env.workdir)
    bare = Child("bare-app", "bench.bare_app", environ, env.workdir)
    # No connection limit: the client must not queue requests the servers should see.
    session = aiohttp.ClientSession(
        connector=aiohttp.TCPConnector(limit=0), timeout=aiohttp.ClientTimeout(total=120)
    )
    try:
        await import_flow(environ, env.workdir, INSTANT)
        await asyncio.gather(bot.start(), bare.start())
        drivers = {
            side: SlackDriver(child.url + "/slack/events", SIGNING_SECRET, emulator, session)
            for side, child in (("bot", bot), ("bare", bare))
        }
        pids: list[int | str] = [bot.pid, bare.pid, "self"]
        if env.mongo.process is not None:
            pids.append(env.mongo.process.pid)
        for text, label in COMMANDS:
            for n in CONCURRENCY:
                samples: dict[str, list[float]] = {"bot": [], "bare": []}
                waits: list[float] = []

                async def one(
                    side: str, n: int = n, text: str = text, waits: list[float] = waits
                ) -> list[float]:
                    drain = side == "bot" and text.startswith("run")
                    waits.append(await wait_quiet(pids))
                    # This process's own full collections (it keeps every message the bot
                    # posted) took 70-80 ms and landed inside some rounds, on either side:
                    # collected before the round, the rest kept out of its collections.
                    gc.collect()
                    gc.freeze()
                    return await _round(drivers[side], emulator, n, text, drain=drain)

                for side in ("bare", "bot"):  # warm-up: connections, caches, auth.test
                    await one(side)
                for i in range(rounds):
                    for side in ("bare", "bot") if i % 2 == 0 else ("bot", "bare"):
                        samples[side] += await one(side)
                say(
                    f"{label} ×{n}: {rounds} rounds per side;"
                    f" waited {max(waits):.2f} s at most for quiet before a round"
                )
                for q in (50, 99):
                    section.add(
                        f"{label} ack p{q}, {n} concurrent",
                        percentile(samples["bot"], q) * 1000,
                        percentile(samples["bare"], q) * 1000,
                        "ms",
                        "bare Bolt app, same stack",
                    )
        section.note(
            "bot (`python -m bot`) and bare Bolt app (bench/bare_app.py) each in a child"
            " process; load generator and Slack emulator in the bench process;"
            f" {rounds} interleaved rounds per side and size after a warm-up round;"
            " requests signed as SlackDriver.slash signs them; `/flow run` starts a one-step"
            " instant flow created with `python -m bot flows import`, and each bot round"
            " waits until its runs have answered; every round starts once the bot, the bare"
            " app, the database and the bench process are idle (each under 10% of a CPU"
            " for two 100 ms windows in a row) and after the bench process collected its"
            " garbage and froze what is left (gc.freeze), so that its own collections stay"
            " out of the timed rounds."
        )
    finally:
        gc.unfreeze()
        await session.close()
        await asyncio.gather(bot.stop(), bare.stop())
        await emulator.stop()
    return section
