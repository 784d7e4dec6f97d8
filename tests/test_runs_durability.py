"""Parked runs, wake-ups, leases, crashes, shutdown, SIGKILL of a real `python -m bot`, and
Slack's rate limits."""

from __future__ import annotations

import asyncio
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any

from adapters.slack import SlackMessenger
from emulator.driver import SlackDriver
from emulator.server import SlackEmulator
from flows.records import RunTrigger
from flows.runner import Done, Outcome, Park, Runner, StepContext, is_timer
from flows.steps import builtin_executors
from storage.embedded import free_port
from storage.mongo import Storage
from storage.runs_repo import MongoRunStore
from tests.fakes import SequentialIds
from tests.support import (
    ALICE,
    BOB,
    SIGNING_SECRET,
    BotHarness,
    bot_process,
    create_flow,
    deps,
    eventually,
    finished_run,
    make_settings,
    runs_of,
    start_flowbot,
    texts_in,
)

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

    doc = await eventually(parked)
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
    engine = deps(bot).runner
    engine.executors.register("approval", ExternalWait())
    flow = await create_flow(bot, ASKING)
    await bot.driver.slash(ALICE, "run Ask")
    run = (await eventually(lambda: runs_of(bot, flow.id)))[0]
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
    engine = deps(bot).runner
    # Another process started the run, did step a, then died (its lease ran out).
    dead = Runner(
        engine.store,
        builtin_executors(SlackMessenger(deps(bot).client), deps(bot).directory),
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
    engine = deps(bot).runner
    await engine.stop()  # the bot's own waker would race the two below
    store = MongoRunStore(bot.db)
    services = deps(bot)
    first, second = (
        Runner(
            store,
            builtin_executors(services.messenger, services.directory),
            services.clock,
            SequentialIds(),
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
    services = deps(bot)
    store = MongoRunStore(bot.db)
    sleepy = Sleepy()
    executors = builtin_executors(services.messenger, services.directory)
    executors.register("set_variable", sleepy)
    first = Runner(store, executors, services.clock, SequentialIds(), stop_grace=0.2)
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
    await eventually(lambda: "succeeded" in bot.emulator.messages_in("#ops-bots")[0]["text"])


# ------------------------------------------------------------------ a real process, SIGKILL


async def test_a_parked_run_survives_sigkill_and_finishes_after_restart(
    emulator: SlackEmulator, mongo_uri: str, db_name: str, tmp_path: Path
) -> None:
    settings = make_settings(emulator, mongo_uri, db_name)
    maker = await start_flowbot(settings)
    flow = await create_flow(maker, DELAYED.replace("duration: 1s", "duration: 3s"))
    await maker.stop()
    storage = Storage(mongo_uri, db_name)
    port = free_port()
    try:
        async with bot_process(settings, tmp_path, port=port) as first:
            async with SlackDriver(first.url + "/slack/events", SIGNING_SECRET, emulator) as driver:
                response = await driver.slash(ALICE, "run Slow")
                assert response.ok

            async def parked() -> Any:
                return await storage.db["runs"].find_one({"flow_id": flow.id, "status": "waiting"})

            await eventually(parked, timeout=20)
            await first.kill()
        assert [m["text"] for m in emulator.messages_in("#general")] == ["one"]
        async with bot_process(settings, tmp_path, port=port):

            async def finished() -> Any:
                return await storage.db["runs"].find_one(
                    {"flow_id": flow.id, "status": "succeeded"}
                )

            await eventually(finished, timeout=30)
            await asyncio.sleep(0.5)
            assert [m["text"] for m in emulator.messages_in("#general")] == ["one", "two"]
            assert await storage.db["runs"].count_documents({"flow_id": flow.id}) == 1
    finally:
        storage.close()


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

    doc = await eventually(parked)
    assert doc["steps"]["route"]["output"]["branch"] == "then"
    assert doc["steps"]["route~then1"]["status"] == "waiting"  # dots are stored as ~
    # Were the condition evaluated again, it would now take the other branch.
    await bot.db["runs"].update_one({"_id": doc["_id"]}, {"$set": {"inputs.go": False}})
    [run] = await finished_run(bot, flow.id)
    assert run.status == "succeeded"
    assert texts_in(bot, "#general") == ["then"]
    assert set(run.steps) == {"route", "route.then1", "went"}
