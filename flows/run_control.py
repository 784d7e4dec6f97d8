"""Run control (SPEC §12): `/flow cancel`, `/flow retry` and `/flow rerun` of one run,
and the same buttons on the run's notify message.

- cancel (owners, and whoever started the run): a queued or waiting run ends `cancelled`
  at once (its pending approvals and asks close and say so, through the runner's cancel
  listeners); a run a process drives right now is flagged and ends at its next step
  boundary (the step in progress ends, no further step starts).
- retry (owners; failed runs): the same run goes on from the step that failed, with the
  version and inputs it had: its failed step results are forgotten and it is queued for
  the waker, which drives it from the first step not recorded as finished.
- rerun (owners; run-only users for their own runs): a new run of the current version
  with the same inputs; its trigger names the run it reruns (`rerun_of`).

Every decision is `flows.permissions`'; refusals are `RunControlRefused` with data.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from flows.catalog import FlowCatalog
from flows.child_cancel import cancel_one
from flows.concurrency import Concurrency
from flows.connections import RUN_CHOICES_KEY
from flows.errors import FlowbotError, FlowNotFound
from flows.permissions import (
    Access,
    may_cancel_run,
    may_rerun,
    may_retry_run,
    resolve_access,
)
from flows.ports import Directory
from flows.records import FlowRecord, RunRecord, RunTrigger
from flows.run_model import CancelRequest
from flows.run_requests import RunNotFound
from flows.runner import Runner

ControlAction = Literal["cancel", "retry", "rerun"]
CANCEL_REASON = "cancelled"


class RunControlRefused(FlowbotError):
    """`action` of run `run_id` refused for `user_id`. `why`: "not_allowed", "finished"
    (cancel: it had ended), "not_failed" (retry), "flow_gone" or "disabled" (retry and
    rerun need the flow)."""

    def __init__(self, action: ControlAction, run_id: str, user_id: str, why: str) -> None:
        super().__init__(f"{user_id} can't {action} run {run_id} ({why}).")
        self.action = action
        self.run_id = run_id
        self.user_id = user_id
        self.why = why


@dataclass(frozen=True)
class Controlled:
    """What an action did: the run (for cancel and retry) or the new run (rerun);
    `stopping`: a cancelled run being driven ends at its next step boundary."""

    action: ControlAction
    run: RunRecord
    stopping: bool = False


def _failed_keys(run: RunRecord) -> list[str]:
    """The failed step results a retry forgets (a step with `on_error: continue` stays)."""
    keys = []
    for key, result in run.steps.items():
        if result.status != "failed":
            continue
        step = run.definition.step(key.rsplit("/", 1)[-1])
        if step is not None and step.on_error == "continue":
            continue
        keys.append(key)
    return keys


class RunControl:
    def __init__(
        self,
        catalog: FlowCatalog,
        runner: Runner,
        directory: Directory,
        concurrency: Concurrency | None = None,
    ) -> None:
        self.catalog = catalog
        self.runner = runner
        self.directory = directory
        self.concurrency = concurrency

    async def _load(self, team_id: str, run_id: str) -> tuple[RunRecord, FlowRecord | None]:
        run = await self.runner.get(run_id.strip())
        if run is None or run.team_id != team_id:
            raise RunNotFound(run_id)
        try:
            flow = await self.catalog.find(team_id, run.flow_id)
        except FlowNotFound:
            flow = None
        return run, flow

    async def _access(self, flow: FlowRecord | None, user_id: str) -> Access:
        return Access() if flow is None else await resolve_access(flow, user_id, self.directory)

    async def cancel(self, team_id: str, user_id: str, run_id: str) -> Controlled:
        run, flow = await self._load(team_id, run_id)
        if not may_cancel_run(await self._access(flow, user_id), user_id, run.started_by):
            raise RunControlRefused("cancel", run.id, user_id, "not_allowed")
        if run.finished:
            raise RunControlRefused("cancel", run.id, user_id, "finished")
        request = CancelRequest(reason=CANCEL_REASON, by=user_id, at=self.runner.clock.now())
        outcome = await cancel_one(self.runner, run.id, request)
        if outcome is False:
            raise RunControlRefused("cancel", run.id, user_id, "finished")
        if isinstance(outcome, RunRecord):
            # Ended now: approvals and asks close, the slot frees, Slack is told.
            return Controlled("cancel", outcome)
        return Controlled("cancel", run, stopping=True)

    async def retry(self, team_id: str, user_id: str, run_id: str) -> Controlled:
        run, flow = await self._load(team_id, run_id)
        if not may_retry_run(await self._access(flow, user_id)):
            raise RunControlRefused("retry", run.id, user_id, "not_allowed")
        if run.status != "failed":
            raise RunControlRefused("retry", run.id, user_id, "not_failed")
        if flow is None:
            raise RunControlRefused("retry", run.id, user_id, "flow_gone")
        if not flow.enabled:
            raise RunControlRefused("retry", run.id, user_id, "disabled")
        held = False
        if self.concurrency is not None:
            limit = run.definition.concurrency
            held = not await self.concurrency.take(run.flow_id, limit, run.id)
        now = self.runner.clock.now()
        retry = {"by": user_id, "at": now, "from_step": run.error_step}
        reopened = await self.runner.store.reopen(run.id, _failed_keys(run), retry, held)
        if reopened is None:  # retried by someone else meanwhile
            raise RunControlRefused("retry", run.id, user_id, "not_failed")
        self.runner._kick.set()  # the waker drives it from its first unfinished step
        return Controlled("retry", reopened)

    async def rerun(self, team_id: str, user_id: str, run_id: str) -> Controlled:
        run, flow = await self._load(team_id, run_id)
        if flow is None:
            raise RunControlRefused("rerun", run.id, user_id, "flow_gone")
        access = await self._access(flow, user_id)
        if not may_rerun(flow, access, user_id, run.started_by):
            raise RunControlRefused("rerun", run.id, user_id, "not_allowed")
        if not flow.enabled:
            raise RunControlRefused("rerun", run.id, user_id, "disabled")
        data = {**run.trigger.data, "rerun_of": run.id, "rerun_by": user_id}
        manual = run.trigger.type == "manual"
        if manual and run.started_by != user_id:
            data.pop(RUN_CHOICES_KEY, None)  # their own connections are theirs only
        trigger = RunTrigger(
            type=run.trigger.type,
            user=user_id if manual or run.trigger.user is None else run.trigger.user,
            data=data,
        )
        started = await self.runner.start_run(flow, trigger, dict(run.inputs))
        return Controlled("rerun", started)


__all__ = ["Controlled", "RunControl", "RunControlRefused"]
