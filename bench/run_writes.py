"""Count the MongoDB writes one run costs (pymongo command monitoring).

    .venv/bin/python bench/run_writes.py

Starts an embedded database and the Slack emulator, runs a flow of N post_message /
set_variable steps (with a notify channel) and a flow with a delay, and prints the writes
to the `runs` collection per run. Expected: 1 insert + 1 `$set` per step + 1 final update;
a delay adds its park and the waker's claim.
"""

from __future__ import annotations

import asyncio
import sys
from collections import Counter
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from motor.motor_asyncio import AsyncIOMotorClient
from pymongo import monitoring

from adapters.run_notifier import SlackRunNotifier, describe_error
from adapters.slack import SlackDirectory, SlackMessenger, make_client
from emulator.server import SlackEmulator
from flows.definition import parse_definition
from flows.ports import RandomIds, SystemClock
from flows.records import FlowRecord, RunTrigger
from flows.runner import Runner
from flows.steps import builtin_executors
from storage.embedded import EmbeddedMongo
from storage.runs_repo import MongoRunStore

WRITE_COMMANDS = ("insert", "update", "findAndModify", "delete")


class WriteCounter(monitoring.CommandListener):
    def __init__(self) -> None:
        self.writes: Counter[str] = Counter()

    def started(self, event: monitoring.CommandStartedEvent) -> None:
        name = event.command_name
        if name in WRITE_COMMANDS and event.command.get(name) == "runs":
            self.writes[name] += 1

    def succeeded(self, event: monitoring.CommandSucceededEvent) -> None:
        pass

    def failed(self, event: monitoring.CommandFailedEvent) -> None:
        pass

    def take(self) -> Counter[str]:
        taken, self.writes = self.writes, Counter()
        return taken


def flow_of(yaml_text: str) -> FlowRecord:
    clock = SystemClock()
    return FlowRecord(
        id="Fbench",
        team_id="T0TEAM",
        definition=parse_definition(yaml_text),
        creator="U0ALICE",
        created_at=clock.now(),
        updated_at=clock.now(),
        updated_by="U0ALICE",
    )


def steps_yaml(count: int) -> str:
    lines = []
    for i in range(count):
        if i % 3 == 1:
            lines.append(f"  - {{type: set_variable, name: v{i}, value: {i}}}")
        else:
            lines.append(f'  - {{type: post_message, channel: "#general", text: "step {i}"}}')
    return 'name: Bench\nnotify: "#bench"\nsteps:\n' + "\n".join(lines) + "\n"


async def main() -> int:
    database = EmbeddedMongo(":memory:")
    await database.astart()
    slack = SlackEmulator()
    await slack.start()
    counter = WriteCounter()
    client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(
        database.uri, tz_aware=True, event_listeners=[counter]
    )
    try:
        store = MongoRunStore(client["bench"])
        await store.ensure_indexes()
        web = make_client("xoxb-test", slack.api_url)
        messenger, directory = SlackMessenger(web), SlackDirectory(web)
        clock = SystemClock()
        runner = Runner(
            store,
            builtin_executors(messenger, directory),
            clock,
            RandomIds(),
            SlackRunNotifier(messenger, directory, clock),
            describe_error=describe_error,
            poll_interval=0.1,
        )
        await runner.start()
        ok = True
        for count in (3, 10):
            counter.take()
            run = await runner.start_run(flow_of(steps_yaml(count)), RunTrigger(type="manual"))
            await runner.wait_for(run.id)
            writes = counter.take()
            total = sum(writes.values())
            stored = await store.get(run.id)
            status = stored.status if stored else "?"
            print(
                f"{count:>2} steps: {total} writes per run ({dict(writes)}); status {status};"
                f" expected {count + 2} = 1 insert + {count} step $set + 1 final"
            )
            ok = ok and total == count + 2 and status == "succeeded"
        counter.take()
        delayed = (
            'name: Wait\nnotify: "#bench"\nsteps:\n'
            '  - {type: post_message, channel: "#general", text: "before"}\n'
            "  - {type: delay, duration: 1s}\n"
            '  - {type: post_message, channel: "#general", text: "after"}\n'
        )
        run = await runner.start_run(flow_of(delayed), RunTrigger(type="manual"))
        for _ in range(100):
            stored = await store.get(run.id)
            if stored and stored.finished:
                break
            await asyncio.sleep(0.1)
        writes = counter.take()
        print(
            f" 3 steps with a 1s delay: {sum(writes.values())} writes ({dict(writes)}):"
            " insert, step, park, claim, delay done, step, final"
        )
        await runner.stop()
        return 0 if ok else 1
    finally:
        client.close()
        await slack.stop()
        await database.astop()


if __name__ == "__main__":
    sys.exit(asyncio.run(main()))
