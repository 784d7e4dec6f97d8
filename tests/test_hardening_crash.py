"""Issue 19: a SIGKILL of a real `python -m bot` in a burst of runs repeats no post, and
every HTTP call sent again after the restart carries the same Idempotency-Key.

The emulator kills the bot right after storing a post and before answering it (the post
happened; the bot never learnt it), while other runs' HTTP calls are in flight (the API
holds them until the crash): half the runs post and call; once 20 of their calls wait, the
other half go on, and the first post of theirs is the last the bot makes.
"""

from __future__ import annotations

import asyncio
import os
import signal
from collections import Counter
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

import pytest
from aiohttp import web

from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from storage.embedded import free_port
from storage.mongo import Storage
from tests.support import (
    ALICE,
    JSON,
    SIGNING_SECRET,
    attach,
    bot_process,
    create_connection,
    create_flow,
    eventually,
    local_http_server,
    make_settings,
    start_flowbot,
)

BURST = """
name: Burst
connections: [{slot: api, kind: http_bearer}]
steps:
  - {id: order, type: http_request, connection: api, method: POST, path: /orders}
  - {id: tell, type: post_message, channel: "#general", text: "order {{ run.id }}"}
  - {id: bill, type: http_request, connection: api, method: POST, path: /bills}
  - {id: done, type: post_message, channel: "#general", text: "billed {{ run.id }}"}
"""
RUNS = 80
BILLS_IN_FLIGHT = 20


@pytest.mark.timeout(300)
async def test_sigkill_in_a_burst_repeats_no_post_and_keys_every_call(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    seen: list[str | None] = []
    gate = asyncio.Event()  # the first half's orders: once every run has started
    bills_waiting = asyncio.Event()  # the second half's orders: once bills are in flight
    killed = asyncio.Event()  # bills wait for the crash: they are in flight at it
    orders = bills = 0

    async def api(request: web.Request) -> web.StreamResponse:
        nonlocal orders, bills
        seen.append(request.headers.get("Idempotency-Key"))
        if request.path == "/orders":
            orders += 1
            await (gate if orders <= RUNS // 2 else bills_waiting).wait()
        else:
            bills += 1
            if bills >= BILLS_IN_FLIGHT:
                bills_waiting.set()
            await killed.wait()
        return web.json_response({"ok": True})

    async with local_http_server(api) as api_url:
        settings = make_settings(
            emulator,
            mongo_uri,
            db_name,
            flowbot_allowed_http_hosts="127.0.0.1",
            # 160 posts to one channel: paced at Slack's 1 a second they would outlast the
            # wait; pacing is not what this test is about (the emulator does not limit).
            flowbot_posts_per_channel=0,
        )
        maker = await start_flowbot(settings)
        flow = await create_flow(maker, BURST)
        record = await create_connection(maker, ALICE, "Shop", api_url, "sk-shop-0123456789")  # type: ignore[arg-type]
        await attach(maker, flow, "api", record.id)  # type: ignore[arg-type]
        await maker.stop()
        storage = Storage(mongo_uri, db_name)
        port = free_port()
        post = emulator._methods["chat.postMessage"]
        try:
            async with bot_process(settings, tmp_path, port=port) as first:

                def post_then_crash(params: JSON) -> Any:
                    answer = post(params)
                    if bills_waiting.is_set() and not killed.is_set():
                        # Stored, not yet answered: the bot dies not knowing it posted.
                        os.killpg(first.process.pid, signal.SIGKILL)
                        killed.set()
                    return answer

                emulator._methods["chat.postMessage"] = post_then_crash
                async with SlackDriver(first.url + "/slack/events", SIGNING_SECRET, emulator) as d:
                    for _ in range(RUNS):
                        assert (await d.slash(ALICE, "run Burst")).ok
                await eventually(lambda: len(seen) >= RUNS // 2)
                gate.set()
                await asyncio.wait_for(killed.wait(), 30)
                await asyncio.wait_for(first.process.wait(), 10)
            emulator._methods["chat.postMessage"] = post
            before = len(emulator.messages_in("#general"))
            # Its leases run out (as 30 s after a crash).
            await storage.db["runs"].update_many(
                {"status": "running"},
                {"$set": {"lease_until": datetime.now(timezone.utc) - timedelta(seconds=1)}},
            )
            async with bot_process(settings, tmp_path, port=port):

                async def all_done() -> Any:
                    runs = [doc async for doc in storage.db["runs"].find({"flow_id": flow.id})]
                    return runs if runs and all(r["status"] == "succeeded" for r in runs) else None

                # A bound on the wait, not on speed: 80 runs resume on a loaded 2-core machine.
                runs = await eventually(all_done, timeout=150)
        finally:
            emulator._methods["chat.postMessage"] = post
            storage.close()
    ids = {r["_id"] for r in runs}
    texts = Counter(m["text"] for m in emulator.messages_in("#general"))
    assert before > BILLS_IN_FLIGHT
    assert {t for t, n in texts.items() if n > 1} == set()  # no post twice
    assert set(texts) == {f"{word} {i}" for i in ids for word in ("order", "billed")}
    # Every call carries its run step's key; the repeats after the restart, the same one.
    keys = Counter(seen)
    assert set(keys) == {f"{i}:{step}" for i in ids for step in ("order", "bill")}
    repeated = sum(n - 1 for n in keys.values())
    assert repeated > 0, "the crash interrupted no call: nothing was checked"
    assert all(r.get("crashes") in (None, 1) for r in runs)
