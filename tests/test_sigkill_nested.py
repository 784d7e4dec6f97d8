"""A real bot process SIGKILLed in the middle of a child run (call_flow with `wait`) and
in the middle of a parallel branch; after a restart nothing repeats and the run ends
(SPEC §11: finished branch steps and child runs are not repeated)."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from storage.embedded import free_port
from storage.mongo import Storage
from tests.support import (
    ALICE,
    SIGNING_SECRET,
    bot_process,
    create_flow,
    eventually,
    make_settings,
    start_flowbot,
)

CHILD = """
name: Child
steps:
  - {id: c1, type: post_message, channel: "#general", text: "child start"}
  - {id: nap, type: delay, duration: 2s}
  - {id: c2, type: post_message, channel: "#general", text: "child end"}
"""

PARENT = """
name: Parent
steps:
  - {id: p1, type: post_message, channel: "#general", text: "before"}
  - {id: call, type: call_flow, flow: Child}
  - {id: p2, type: post_message, channel: "#general", text: "after {{ steps.call.status }}"}
"""

FAN = """
name: Fan
steps:
  - id: fan
    type: parallel
    branches:
      - - {id: a1, type: post_message, channel: "#general", text: "a1"}
        - {id: a_nap, type: delay, duration: 2s}
        - {id: a2, type: post_message, channel: "#general", text: "a2"}
      - - {id: b1, type: post_message, channel: "#general", text: "b1"}
        - {id: b_nap, type: delay, duration: 5s}
        - {id: b2, type: post_message, channel: "#general", text: "b2"}
  - {id: end, type: post_message, channel: "#general", text: "end"}
"""


async def _kill_and_restart(
    emulator: SlackEmulator,
    mongo_uri: str,
    db_name: str,
    tmp_path: Path,
    sources: list[str],
    command: str,
    killed_when: dict[str, Any],
) -> tuple[Storage, list[str], Any]:
    """Run `command` in a bot process, SIGKILL it once a run matches `killed_when`,
    start another; (storage, the texts posted before the kill, the last flow)."""
    settings = make_settings(emulator, mongo_uri, db_name)
    maker = await start_flowbot(settings)
    flows = [await create_flow(maker, source) for source in sources]
    await maker.stop()
    storage = Storage(mongo_uri, db_name)
    port = free_port()
    async with bot_process(settings, tmp_path, port=port) as first:
        async with SlackDriver(first.url + "/slack/events", SIGNING_SECRET, emulator) as driver:
            assert (await driver.slash(ALICE, command)).ok

        async def at_the_kill_point() -> Any:
            return await storage.db["runs"].find_one(killed_when)

        await eventually(at_the_kill_point, timeout=20)
        await first.kill()
    before = [m["text"] for m in emulator.messages_in("#general")]
    async with bot_process(settings, tmp_path, port=port):

        async def finished() -> Any:
            return await storage.db["runs"].find_one(
                {"flow_id": flows[-1].id, "status": "succeeded"}
            )

        await eventually(finished, timeout=40)
        await asyncio.sleep(0.3)
    return storage, before, flows[-1]


async def test_a_child_run_survives_sigkill_and_repeats_nothing(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    storage, before, parent = await _kill_and_restart(
        emulator,
        mongo_uri,
        db_name,
        tmp_path,
        [CHILD, PARENT],
        "run Parent",
        {"flow_name": "Child", "steps.nap.status": "waiting"},
    )
    try:
        assert before == ["before", "child start"]
        texts = [m["text"] for m in emulator.messages_in("#general")]
        assert texts == ["before", "child start", "child end", "after succeeded"]
        children = await storage.db["runs"].count_documents({"flow_name": "Child"})
        assert children == 1  # the child was not started again
        run = await storage.db["runs"].find_one({"flow_id": parent.id})
        assert run is not None and run["status"] == "succeeded"
    finally:
        storage.close()


async def test_a_parallel_branch_survives_sigkill_and_repeats_nothing(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    storage, before, _flow = await _kill_and_restart(
        emulator,
        mongo_uri,
        db_name,
        tmp_path,
        [FAN],
        "run Fan",
        # Branch a has finished, branch b still waits.
        {"flow_name": "Fan", "steps.a2.status": "succeeded", "steps.b_nap.status": "waiting"},
    )
    try:
        assert sorted(before) == ["a1", "a2", "b1"]
        texts = [m["text"] for m in emulator.messages_in("#general")]
        assert sorted(texts) == ["a1", "a2", "b1", "b2", "end"] and texts[-1] == "end"
    finally:
        storage.close()
