"""Failure alerts (SPEC §14): the owners hear once when a flow has failed `alert_after` runs
in a row (flow-level, default 3, 0: off), and once when it succeeds again.

The streak is one counter per flow (`FailureStreakStore`), changed by a single atomic
update that returns the count before it: the run that makes the count reach
`alert_after` is the only one that alerts, and the success that resets a count at or past
it is the only one that announces the recovery, whichever process drove them.
Cancelled runs change nothing.
"""

from __future__ import annotations

import logging
from typing import Protocol

from flows.records import FlowRecord, RunRecord

log = logging.getLogger(__name__)


class FailureStreakStore(Protocol):
    """MongoDB adapter: `storage.alerts_repo`."""

    async def failed(self, team_id: str, flow_id: str) -> int:
        """Add one failure; the count after it."""
        ...

    async def succeeded(self, flow_id: str) -> int:
        """Reset the count to 0; the count before it."""
        ...

    async def forget(self, flow_id: str) -> None:
        """The flow was deleted: its streak goes with it."""
        ...


class AlertNotifier(Protocol):
    async def failing(self, flow: FlowRecord, run: RunRecord, failures: int) -> None: ...

    async def recovered(self, flow: FlowRecord, run: RunRecord, failures: int) -> None: ...


class FlowSource(Protocol):
    async def get(self, team_id: str, flow_id: str) -> FlowRecord | None: ...


class FailureAlerts:
    """`Runner.on_finished` listener."""

    def __init__(
        self, streaks: FailureStreakStore, flows: FlowSource, notifier: AlertNotifier
    ) -> None:
        self.streaks = streaks
        self.flows = flows
        self.notifier = notifier

    async def on_run_finished(self, run: RunRecord) -> None:
        threshold = run.definition.alert_after
        if run.status == "failed":
            count = await self.streaks.failed(run.team_id, run.flow_id)
            if threshold and count == threshold:
                await self._tell(run, count, recovered=False)
        elif run.status == "succeeded":
            before = await self.streaks.succeeded(run.flow_id)
            if threshold and before >= threshold:
                await self._tell(run, before, recovered=True)

    async def on_flow_deleted(self, team_id: str, flow_id: str, deleted_by: str) -> None:
        """`FlowCatalog.on_delete` listener: the streak is deleted with its flow."""
        await self.streaks.forget(flow_id)

    async def _tell(self, run: RunRecord, count: int, *, recovered: bool) -> None:
        flow = await self.flows.get(run.team_id, run.flow_id)
        if flow is None:
            return
        if recovered:
            await self.notifier.recovered(flow, run, count)
        else:
            await self.notifier.failing(flow, run, count)
