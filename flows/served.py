"""Scheduled runs only for workspaces the app is still installed in (many workspaces).

A workspace that removed Flowbot keeps its flows (installing it again brings them back),
but its schedules start no run meanwhile: each would fail at its first Slack call."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from flows.records import FlowRecord, RunRecord, RunTrigger
from flows.run_model import RunRefused
from flows.scheduling import RunStarter

UNINSTALLED = "in a workspace Flowbot was removed from"


class ServedWorkspacesOnly:
    """A `RunStarter` refusing (RunRefused) runs of workspaces `serves` says no to."""

    def __init__(self, runner: RunStarter, serves: Callable[[str], Awaitable[bool]]) -> None:
        self.runner = runner
        self.serves = serves

    async def start_run(
        self,
        flow: FlowRecord,
        trigger: RunTrigger,
        inputs: Mapping[str, Any] | None = None,
        *,
        reply_to: str | None = None,
        run_key: str | None = None,
        depth: int = 0,
    ) -> RunRecord:
        if not await self.serves(flow.team_id):
            raise RunRefused(flow.name, UNINSTALLED)
        return await self.runner.start_run(
            flow, trigger, inputs, reply_to=reply_to, run_key=run_key, depth=depth
        )
