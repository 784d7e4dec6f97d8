"""The unit layer: use cases and the run engine on in-memory stores
(`flows.testing.memory`), a fake clock, a recording messenger; no HTTP, no database.
`make test-fast` runs it with tests/contract in well under 20 seconds."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass
from datetime import timedelta

import pytest

from flows.approvals import ApprovalService, ApprovalStepExecutor
from flows.records import FlowRecord, RunRecord, RunTrigger
from flows.runner import Runner
from flows.steps import builtin_executors
from flows.testing.fakes import (
    FakeClock,
    FixedDirectory,
    RecordingApprovalNotifier,
    RecordingMessenger,
    RecordingRunNotifier,
    SequentialIds,
)
from flows.testing.memory import MemoryApprovalStore, MemoryRunStore
from tests.builders import ALICE, BOB, CAROL, DAVE, T0

BOT = "U0BOT"


@dataclass
class Engine:
    """A Runner with every step type, and what it talks to."""

    runner: Runner
    runs: MemoryRunStore
    clock: FakeClock
    messenger: RecordingMessenger
    notifier: RecordingRunNotifier
    approvals: ApprovalService
    approval_store: MemoryApprovalStore
    approval_notifier: RecordingApprovalNotifier

    async def run(self, flow: FlowRecord, user: str = ALICE, **inputs: object) -> RunRecord:
        """Start a run by hand and drive it as far as it goes (done, failed or parked)."""
        run = await self.runner.start_run(flow, RunTrigger(type="manual", user=user), inputs)
        await self.settle()
        stored = await self.runs.get(run.id)
        assert stored is not None
        return stored

    async def settle(self) -> None:
        await self.runner.idle()
        await self.approvals.wait_idle()
        await self.runner.idle()

    async def later(self, delta: timedelta) -> int:
        """Move the clock on and let the waker do one pass."""
        self.clock.advance(delta)
        woken = await self.runner.wake_due()
        await self.settle()
        return woken


def directory() -> FixedDirectory:
    return FixedDirectory(
        groups={"S0LEADS": [BOB, CAROL]},
        channels={"C0GENERAL": [ALICE, BOB, CAROL, DAVE, BOT], "C0EMPTY": [BOT]},
        admins=["U0ADMIN"],
        names={"general": "C0GENERAL"},
    )


@pytest.fixture
async def engine() -> AsyncIterator[Engine]:
    clock = FakeClock(T0)
    ids = SequentialIds()
    messenger = RecordingMessenger(missing_channels=["#nowhere"])
    runs = MemoryRunStore()
    notifier = RecordingRunNotifier()
    folks = directory()
    approval_store = MemoryApprovalStore()
    approval_notifier = RecordingApprovalNotifier(bot=BOT)
    approvals = ApprovalService(approval_store, approval_notifier, folks, clock, ids)
    executors = builtin_executors(messenger, folks)
    executors.register("approval", ApprovalStepExecutor(approvals))
    runner = Runner(runs, executors, clock, ids, notifier, owner="unit")
    approvals.attach_runner(runner)
    runner.on_cancelled.append(approvals.on_run_cancelled)
    yield Engine(
        runner, runs, clock, messenger, notifier, approvals, approval_store, approval_notifier
    )
    await runner.stop()
    await approvals.stop()
