"""Writes per run (issue 20): a step with no outside effect (a condition, a variable)
rides along with the run's next write, a finished post is written before the next post
starts, and the last step rides along with the end. Counted as the commands the runner's
MongoDB store sends to the embedded server."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import monitoring

from flows.records import RunRecord, RunTrigger
from flows.runner import Runner
from flows.steps import builtin_executors
from flows.testing.fakes import FakeClock, FixedDirectory, RecordingMessenger, SequentialIds
from storage.embedded import EmbeddedMongo
from storage.runs_repo import MongoRunStore
from tests.builders import ALICE, T0, flow_record

WRITES = {"insert", "update", "findAndModify", "delete"}

THREE_STEPS = """
name: Three
steps:
  - {id: first, type: post_message, channel: "#general", text: "first"}
  - id: check
    type: condition
    if: "{{ steps.first.ts != '' }}"
    then:
      - {id: second, type: post_message, channel: "#general", text: "second {{ steps.first.ts }}"}
"""

POSTS_IN_A_ROW = """
name: Posts
steps:
""" + "".join(
    f'  - {{id: p{n}, type: post_message, channel: "#general", text: "{n}"}}\n'
    f"  - {{id: v{n}, type: set_variable, name: n, value: {n}}}\n"
    for n in range(5)
)


class Writes(monitoring.CommandListener):
    def __init__(self) -> None:
        self.count = 0

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        if event.command_name in WRITES:
            self.count += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass


class Harness:
    def __init__(self, runner: Runner, runs: MongoRunStore, writes: Writes) -> None:
        self.runner, self.runs, self.writes = runner, runs, writes

    async def run(self, yaml_text: str) -> tuple[RunRecord, int]:
        before = self.writes.count
        started = await self.runner.start_run(
            flow_record(yaml_text), RunTrigger(type="manual", user=ALICE), {}
        )
        await self.runner.idle()
        run = await self.runs.get(started.id)
        assert run is not None
        return run, self.writes.count - before


@pytest.fixture
async def harness(mongo: EmbeddedMongo, db_name: str) -> AsyncIterator[Harness]:
    writes = Writes()
    uri = os.environ.get("FLOWBOT_TEST_MONGODB_URI") or mongo.uri
    client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(
        uri, tz_aware=True, event_listeners=[writes]
    )
    runs = MongoRunStore(client[db_name])
    await runs.ensure_indexes()
    folks = FixedDirectory(channels={"C0GENERAL": [ALICE]}, names={"general": "C0GENERAL"})
    executors = builtin_executors(RecordingMessenger(), folks)
    runner = Runner(runs, executors, FakeClock(T0), SequentialIds(), owner="writes")
    yield Harness(runner, runs, writes)
    await runner.stop()
    await client.drop_database(db_name)
    client.close()


async def test_a_three_step_run_costs_three_writes(harness: Harness) -> None:
    run, writes = await harness.run(THREE_STEPS)
    assert run.status == "succeeded", run.error
    assert list(run.steps) == ["first", "check", "second"]
    assert run.steps["check"].output["branch"] == "then"
    assert writes == 3  # insert; first and check before second starts; second with the end


async def test_posts_in_a_row_cost_about_one_write_each(harness: Harness) -> None:
    run, writes = await harness.run(POSTS_IN_A_ROW)
    assert run.status == "succeeded", run.error
    assert len(run.steps) == 10 and run.vars == {"n": 4}
    # The insert, one write before each post after the first, and the end.
    assert writes == 1 + 4 + 1


LOOP_OF_POSTS = """
name: Loop
steps:
  - id: each
    type: for_each
    items: "{{ [1, 2, 3, 4, 5] }}"
    steps:
      - {id: hi, type: post_message, channel: "#general", text: "hi {{ item }}"}
      - {id: seen, type: set_variable, name: last, value: "{{ item }}"}
"""

TRY_AND_BRANCHES = """
name: Nested
steps:
  - id: guarded
    type: try
    steps:
      - {id: a, type: post_message, channel: "#general", text: "a"}
      - id: pick
        type: switch
        value: "x"
        cases:
          x: [{id: b, type: post_message, channel: "#general", text: "b"}]
    finally:
      - {id: c, type: post_message, channel: "#general", text: "c"}
  - id: both
    type: parallel
    branches:
      - - {id: d, type: post_message, channel: "#general", text: "d"}
      - - {id: e, type: set_variable, name: e, value: 1}
"""


async def test_a_loop_of_posts_costs_about_one_write_per_post(harness: Harness) -> None:
    run, writes = await harness.run(LOOP_OF_POSTS)
    assert run.status == "succeeded", run.error
    assert run.steps["each"].status == "succeeded" and run.steps["each"].output["count"] == 5
    assert [run.steps[f"each[{i}]/hi"].status for i in range(5)] == ["succeeded"] * 5
    assert run.vars == {"last": 5}
    # The insert, the loop's items before the first post, one write before each later
    # post, and the end: N + 2 writes for N posts (each step alone: 2N + 3).
    assert writes == 1 + 1 + 4 + 1


async def test_nested_steps_are_all_recorded_with_fewer_writes(harness: Harness) -> None:
    run, writes = await harness.run(TRY_AND_BRANCHES)
    assert run.status == "succeeded", run.error
    for key in ("guarded", "a", "pick", "b", "c", "both", "d", "e"):
        assert run.steps[key].status == "succeeded", key
    # Posts a, b, c, d: the insert, one write before each post after the first, the end.
    assert writes == 1 + 3 + 1
