"""The "run started" notice goes off the run's path (issue 20): the first step starts
while Slack answers; the next notice updates the same message and the run records it."""

from __future__ import annotations

import asyncio

from flows.records import MessageRef, RunRecord, RunTrigger
from flows.run_model import RunEvent
from flows.run_notices import OffPathNotices
from flows.runner import Runner
from flows.steps import builtin_executors
from flows.testing.fakes import FakeClock, FixedDirectory, RecordingMessenger, SequentialIds
from flows.testing.memory import MemoryRunStore
from tests.builders import ALICE, T0, flow_record

NOTIFIED = """
name: Noticed
notify: "#general"
steps:
  - {id: hello, type: post_message, channel: "#general", text: "hello"}
  - {id: more, type: set_variable, name: n, value: 1}
"""
NOTICE = MessageRef(channel="C0GENERAL", ts="999.000")


class SlowSlack:
    """A notifier whose first post waits until `answer` is set (a busy notify channel)."""

    def __init__(self) -> None:
        self.answer = asyncio.Event()
        self.calls: list[tuple[RunEvent, MessageRef | None]] = []

    async def run_event(self, run: RunRecord, event: RunEvent) -> MessageRef | None:
        self.calls.append((event, run.notify_message))
        if run.notify_message is None:
            await self.answer.wait()
            return NOTICE
        return run.notify_message


async def test_the_first_step_does_not_wait_for_the_started_notice() -> None:
    slack, messenger, runs = SlowSlack(), RecordingMessenger(), MemoryRunStore()
    folks = FixedDirectory(channels={"C0GENERAL": [ALICE]}, names={"general": "C0GENERAL"})
    runner = Runner(
        runs,
        builtin_executors(messenger, folks),
        FakeClock(T0),
        SequentialIds(),
        OffPathNotices(slack),
        progress_interval=0,
    )
    run = await runner.start_run(flow_record(NOTIFIED), RunTrigger(type="manual", user=ALICE))
    for _ in range(20):
        await asyncio.sleep(0)
    assert [m.text for m in messenger.sent] == ["hello"]  # while the notice is on its way
    slack.answer.set()
    await runner.idle()
    stored = await runs.get(run.id)
    assert stored is not None and stored.status == "succeeded"
    # Progress was skipped while the notice was on its way; the end updates that message.
    assert slack.calls[0] == ("started", None)
    assert slack.calls[-1] == ("finished", NOTICE)
    assert [event for event, _ in slack.calls].count("started") == 1
    assert stored.notify_message == NOTICE
    await runner.stop()
