"""Parked runs, wake-ups, leases, crashes, shutdown, SIGKILL of a real `python -m bot`, and
Slack's rate limits."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import time
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from flows.catalog import FlowCatalog
from flows.definition import parse_definition
from flows.records import RunTrigger
from flows.runner import Done, Outcome, Park, Runner, StepContext, is_timer
from flows.steps import builtin_executors
from handlers.slack_adapters import SlackDirectory, SlackMessenger, make_client
from storage.embedded import free_port
from storage.flows_repo import MongoFlowStore
from storage.mongo import Storage
from storage.runs_repo import MongoRunStore
from tests.conftest import ALICE, BOB, BOT_TOKEN, SIGNING_SECRET, TEAM, BotHarness
from tests.fakes import SequentialIds
from tests.runs_helpers import create_flow, finished_run, runner, runs_of, texts_in, wait_for

ROOT = Path(__file__).resolve().parent.parent

DELAYED = """
name: Slow
steps:
  - {id: one, type: post_message, channel: "#general", text: "one"}
  - {id: pause, type: delay, duration: 1s}
  - {id: two, type: post_message, channel: "#general", text: "two"}
"""


async def test_a_delay_parks_the_run_then_the_waker_finishes_it(bot: BotHarness) -> None:
    flow = await create_flow(bot, DELAYED)
    await bot.driver.slash(ALICE, "run Slow")

    async def parked() -> Any:
        return await bot.db["runs"].find_one({"flow_id": flow.id, "status": "waiting"})

    doc = await wait_for(parked)
    assert doc["wake_at"] > doc["created_at"]
    assert "lease_owner" not in doc
    assert doc["steps"]["pause"]["status"] == "waiting"
    assert texts_in(bot, "#general") == ["one"]
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded"
    assert run.steps["pause"].status == "succeeded"
    assert run.wake_at is None
    assert texts_in(bot, "#general") == ["one", "two"]


class ExternalWait:
    """A step executor that waits for an outside decision (as approvals do)."""

    def __init__(self) -> None:
        self.timers = 0

    async def execute(self, step: Any, ctx: StepContext) -> Outcome:
        return Park(wake_at=None, waiting_for=f"decision:{step.id}", output={"asked": True})

    async def resume(self, step: Any, ctx: StepContext, payload: Mapping[str, Any]) -> Outcome:
        if is_timer(payload):
            self.timers += 1
            return Park(waiting_for=f"decision:{step.id}")
        return Done({"outcome": payload["outcome"], "responder": payload.get("by")})


ASKING = """
name: Ask
steps:
  - {id: ask, type: approval, approvers: ["<@U0BOB>"], title: "May I?"}
  - id: route
    type: condition
    if: "{{ steps.ask.outcome == 'approved' }}"
    then:
      - id: said_yes
        type: post_message
        channel: "#general"
        text: "approved by {{ steps.ask.responder }}"
    else:
      - {id: said_no, type: post_message, channel: "#general", text: "rejected"}
"""


async def test_resume_wakes_a_parked_step_exactly_once(bot: BotHarness) -> None:
    engine = runner(bot)
    engine.executors.register("approval", ExternalWait())
    flow = await create_flow(bot, ASKING)
    await bot.driver.slash(ALICE, "run Ask")
    run = (await wait_for(lambda: runs_of(bot, flow.id)))[0]
    # Resuming before the step is parked waits for it; resuming twice counts once.
    results = await asyncio.gather(
        engine.resume(run.id, "ask", {"outcome": "approved", "by": BOB}),
        engine.resume(run.id, "ask", {"outcome": "rejected", "by": BOB}),
    )
    assert sorted(results) == [False, True], await bot.db["runs"].find_one({"_id": run.id})
    [done] = await finished_run(bot, flow.id)
    assert done.status == "succeeded"
    outcome = done.steps["ask"].output["outcome"]
    assert texts_in(bot, "#general") == (
        [f"approved by {BOB}"] if outcome == "approved" else ["rejected"]
    )
    assert await engine.resume(run.id, "ask", {"outcome": "approved"}) is False
    assert await engine.resume("Rnope", "ask", {"outcome": "approved"}) is False


async def test_a_crashed_run_continues_from_the_first_unfinished_step(bot: BotHarness) -> None:
    flow = await create_flow(
        bot,
        """
name: Crashy
steps:
  - {id: a, type: post_message, channel: "#general", text: "a"}
  - {id: b, type: post_message, channel: "#general", text: "b"}
  - {id: c, type: post_message, channel: "#general", text: "c"}
""",
    )
    engine = runner(bot)
    # Another process started the run, did step a, then died (its lease ran out).
    dead = Runner(
        engine.store,
        builtin_executors(SlackMessenger(bot.flowbot.deps.client), bot.flowbot.deps.directory),
        engine.clock,
        SequentialIds(),
        owner="dead-process",
    )
    run = await dead.start_run(flow, RunTrigger(type="manual", user=ALICE))
    await dead.idle()
    await bot.db["runs"].update_one(
        {"_id": run.id},
        {
            "$set": {
                "status": "running",
                "lease_owner": "dead-process",
                "lease_until": datetime.now(timezone.utc) - timedelta(seconds=1),
                "finished_at": None,
            },
            "$unset": {"steps.b": "", "steps.c": ""},
        },
    )
    bot.emulator.messages.clear()
    [done] = await finished_run(bot, flow.id)
    assert done.status == "succeeded"
    assert texts_in(bot, "#general") == ["b", "c"]  # a is not posted again


async def test_two_processes_never_drive_the_same_run(bot: BotHarness) -> None:
    flow = await create_flow(bot, DELAYED)
    engine = runner(bot)
    await engine.stop()  # the bot's own waker would race the two below
    store = MongoRunStore(bot.db)
    deps = bot.flowbot.deps
    first, second = (
        Runner(
            store, builtin_executors(deps.messenger, deps.directory), deps.clock, SequentialIds()
        )
        for _ in range(2)
    )
    run = await first.start_run(flow, RunTrigger(type="manual", user=ALICE))
    await first.idle()
    assert (await store.get(run.id)).status == "waiting"  # type: ignore[union-attr]
    await asyncio.sleep(1.1)
    claimed = await asyncio.gather(first.wake_due(), second.wake_due())
    assert sorted(claimed) == [0, 1]
    await first.idle()
    await second.idle()
    [done] = await runs_of(bot, flow.id)
    assert done.status == "succeeded"
    assert texts_in(bot, "#general") == ["one", "two"]


class Sleepy:
    def __init__(self) -> None:
        self.started = asyncio.Event()

    async def execute(self, step: Any, ctx: StepContext) -> Outcome:
        self.started.set()
        await asyncio.sleep(30)
        return Done({})

    async def resume(self, step: Any, ctx: StepContext, payload: Mapping[str, Any]) -> Outcome:
        return Done({})


async def test_shutdown_queues_busy_runs_and_the_next_start_resumes_them(
    bot: BotHarness,
) -> None:
    flow = await create_flow(
        bot,
        """
name: Busy
steps:
  - {id: a, type: post_message, channel: "#general", text: "a"}
  - {id: slow, type: set_variable, name: x, value: 1}
  - {id: b, type: post_message, channel: "#general", text: "b"}
""",
    )
    deps = bot.flowbot.deps
    store = MongoRunStore(bot.db)
    sleepy = Sleepy()
    executors = builtin_executors(deps.messenger, deps.directory)
    executors.register("set_variable", sleepy)
    first = Runner(store, executors, deps.clock, SequentialIds(), stop_grace=0.2)
    run = await first.start_run(flow, RunTrigger(type="manual", user=ALICE))
    await asyncio.wait_for(sleepy.started.wait(), 10)
    await first.stop()
    stored = await store.get(run.id)
    assert stored is not None and stored.status == "queued"
    assert list(stored.steps) == ["a"]
    # The bot's own runner (another "process") picks it up and finishes it.
    [done] = await finished_run(bot, flow.id)
    assert done.status == "succeeded"
    assert texts_in(bot, "#general") == ["a", "b"]


async def test_every_message_arrives_in_order_under_rate_limits(bot: BotHarness) -> None:
    steps = "\n".join(
        f'  - {{type: post_message, channel: "#general", text: "message {i}"}}' for i in range(5)
    )
    flow = await create_flow(bot, f'name: Chatty\nnotify: "#ops-bots"\nsteps:\n{steps}\n')
    bot.emulator.set_rate_limit("chat.postMessage", per_channel_per_second=2, retry_after=1)
    bot.emulator.set_rate_limit("chat.update", per_channel_per_second=1, retry_after=1)
    await bot.driver.slash(ALICE, "run Chatty")
    [run] = await finished_run(bot, flow.id, count=1)
    assert run.status == "succeeded", run.error
    assert texts_in(bot, "#general") == [f"message {i}" for i in range(5)]
    assert bot.emulator.rate_limited_count > 0
    await wait_for(lambda: "succeeded" in bot.emulator.messages_in("#ops-bots")[0]["text"])


# ------------------------------------------------------------------ a real process, SIGKILL


def _start_bot(emulator: SlackEmulator, mongo_uri: str, db_name: str, port: int, log: Path) -> Any:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("SLACK_", "MONGODB_"))}
    env.update(
        {
            "SLACK_API_URL": emulator.api_url,
            "SLACK_BOT_TOKEN": BOT_TOKEN,
            "SLACK_SIGNING_SECRET": SIGNING_SECRET,
            "MONGODB_URI": mongo_uri,
            "MONGODB_DB": db_name,
            "PORT": str(port),
            "LOG_LEVEL": "WARNING",
        }
    )
    return subprocess.Popen(
        [sys.executable, "-m", "bot"],
        env=env,
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=log.open("ab"),  # a file, not a pipe nobody reads (it would fill up)
        start_new_session=True,
    )


async def _healthy(port: int, process: Any) -> None:
    import aiohttp

    deadline = time.monotonic() + 60
    async with aiohttp.ClientSession() as session:
        while time.monotonic() < deadline:
            assert process.poll() is None, f"the bot exited with {process.returncode}"
            try:
                async with session.get(f"http://127.0.0.1:{port}/healthz") as response:
                    if response.status == 200:
                        return
            except aiohttp.ClientError:
                pass
            await asyncio.sleep(0.2)
    raise AssertionError("the bot did not become healthy")


async def test_a_parked_run_survives_sigkill_and_finishes_after_restart(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    log = tmp_path / "bot.log"
    storage = Storage(mongo_uri, db_name)
    flows = MongoFlowStore(storage.db)
    await flows.ensure_indexes()
    directory = SlackDirectory(make_client(BOT_TOKEN, emulator.api_url))
    catalog = FlowCatalog(flows, directory, _Clock(), SequentialIds())
    definition = parse_definition(DELAYED.replace("duration: 1s", "duration: 3s"))
    flow = (await catalog.create(TEAM, ALICE, definition)).flow
    port = free_port()
    first = _start_bot(emulator, mongo_uri, db_name, port, log)
    second = None
    try:
        await _healthy(port, first)
        async with SlackDriver(
            f"http://127.0.0.1:{port}/slack/events", SIGNING_SECRET, emulator
        ) as driver:
            response = await driver.slash(ALICE, "run Slow")
            assert response.ok

        async def parked() -> Any:
            return await storage.db["runs"].find_one({"flow_id": flow.id, "status": "waiting"})

        await wait_for(parked, timeout=20)
        os.killpg(first.pid, signal.SIGKILL)
        first.wait(10)
        assert [m["text"] for m in emulator.messages_in("#general")] == ["one"]
        second = _start_bot(emulator, mongo_uri, db_name, port, log)
        await _healthy(port, second)

        async def finished() -> Any:
            return await storage.db["runs"].find_one({"flow_id": flow.id, "status": "succeeded"})

        await wait_for(finished, timeout=30)
        await asyncio.sleep(0.5)
        assert [m["text"] for m in emulator.messages_in("#general")] == ["one", "two"]
        assert await storage.db["runs"].count_documents({"flow_id": flow.id}) == 1
    except BaseException:
        print(log.read_text(errors="replace")[-5000:] if log.exists() else "(no bot log)")
        raise
    finally:
        for process in (first, second):
            if process is not None and process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
                try:
                    process.wait(20)
                except subprocess.TimeoutExpired:
                    os.killpg(process.pid, signal.SIGKILL)
                    process.wait()
        storage.close()


class _Clock:
    def now(self) -> datetime:
        return datetime.now(timezone.utc)


async def test_a_resumed_run_follows_the_branch_its_condition_took(bot: BotHarness) -> None:
    flow = await create_flow(
        bot,
        """
name: Fork
inputs:
  - {id: go, type: boolean, required: true}
steps:
  - id: route
    type: condition
    if: "{{ inputs.go }}"
    then:
      - {type: delay, duration: 1s}
      - {id: went, type: post_message, channel: "#general", text: "then"}
    else:
      - {id: stayed, type: post_message, channel: "#general", text: "else"}
""",
    )
    await bot.driver.slash(ALICE, "run Fork go=yes")

    async def parked() -> Any:
        return await bot.db["runs"].find_one({"flow_id": flow.id, "status": "waiting"})

    doc = await wait_for(parked)
    assert doc["steps"]["route"]["output"]["branch"] == "then"
    assert doc["steps"]["route~then1"]["status"] == "waiting"  # dots are stored as ~
    # Were the condition evaluated again, it would now take the other branch.
    await bot.db["runs"].update_one({"_id": doc["_id"]}, {"$set": {"inputs.go": False}})
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded"
    assert texts_in(bot, "#general") == ["then"]
    assert set(run.steps) == {"route", "route.then1", "went"}
