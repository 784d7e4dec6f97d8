"""The `call_flow` step (SPEC §11): run an instant flow of the same workspace as a child.

When the step runs, the child flow is looked up (by name or id), the parent flow's
creator must be allowed to run it (`RunRequests.permit`, the same rule as a person
running it by hand), and the inputs are checked against the child's. The child run is an
ordinary run of the child flow, in its history, its trigger (`call`) naming the parent
run. Its id is derived from the parent run and step, so a step resumed after a crash
finds the child it started instead of starting another.

With `wait` the parent parks until the child ends: the runner wakes it when the child
finishes (`Runner._tell_parent`), and a poll timer looks at the child too, in case that
wake-up was lost in a crash. A failed or cancelled child fails the step.
"""

from __future__ import annotations

from collections.abc import Mapping
from datetime import timedelta
from typing import Any

from flows.child_cancel import cancel_one
from flows.definition.steps import CallFlowStep
from flows.errors import FlowNotFound
from flows.records import FlowRecord, RunRecord, RunTrigger
from flows.run_model import (
    CancelRequest,
    ChildCall,
    Done,
    DuplicateRun,
    Outcome,
    Park,
    StepContext,
    StepFailed,
)
from flows.run_requests import RunNotAllowed, RunRequests, missing_required, with_defaults
from flows.runner import Runner

#: Calls nest at most this deep (a child calling a child…).
MAX_CALL_DEPTH = 5
WAITING_PREFIX = "child_run:"


def _check_inputs(child: FlowRecord, values: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs, each coerced to the child's input type; StepFailed naming the field."""
    checked: dict[str, Any] = {}
    for name, value in values.items():
        spec = child.definition.input(name)
        if spec is None:
            known = ", ".join(i.id for i in child.definition.inputs) or "none"
            raise StepFailed(f"{child.name} has no input {name!r} (its inputs: {known})", "inputs")
        if value is None or (spec.type != "text" and value == ""):
            continue
        try:
            keep = isinstance(value, (bool, int, float)) and spec.type in ("number", "boolean")
            checked[name] = value if keep else spec.coerce(str(value))
        except ValueError as exc:
            raise StepFailed(f"{exc}", f"inputs.{name}") from None
    checked = with_defaults(child, checked)
    missing = missing_required(child, checked)
    if missing:
        names = ", ".join(spec.id for spec in missing)
        raise StepFailed(f"{child.name} needs the input(s) {names}", "inputs")
    return checked


class CallFlowExecutor:
    """Starts the child run; with `wait`, parks until it ends. Output: `run_id`,
    `status` and `outputs` (the child's flow outputs)."""

    def __init__(
        self, requests: RunRequests, runner: Runner, poll: timedelta = timedelta(minutes=1)
    ) -> None:
        self.requests = requests
        self.runner = runner
        self.poll = poll

    async def execute(self, step: CallFlowStep, ctx: StepContext) -> Outcome:
        run = ctx.run
        if run.call_depth >= MAX_CALL_DEPTH:
            raise StepFailed(f"calls nest at most {MAX_CALL_DEPTH} deep", "flow")
        ref = (await ctx.text("flow", step.flow)).strip()
        child = await self._child(run, ref)
        values = {name: await ctx.native(f"inputs.{name}", v) for name, v in step.inputs.items()}
        inputs = _check_inputs(child, values)
        call = ChildCall(run.id, ctx.step_id, run.call_depth + 1)
        data = {"parent_run": run.id, "parent_flow": run.flow_name, "parent_step": ctx.step_id}
        trigger = RunTrigger(type="call", user=run.started_by, data=data)
        try:
            started = await self.runner.start_run(child, trigger, inputs, call=call)
        except DuplicateRun:
            # Started before a crash: this is the same call, go on with that run.
            found = await self.runner.get(call.child_id)
            if found is None:
                raise StepFailed("the called flow's run is missing") from None
            started = found
        if not step.wait:
            return Done({"run_id": started.id, "status": started.status, "outputs": {}})
        return self._park(ctx, started.id)

    async def _child(self, run: RunRecord, ref: str) -> FlowRecord:
        try:
            parent = await self.requests.catalog.find(run.team_id, run.flow_id)
        except FlowNotFound:
            raise StepFailed("the calling flow was deleted") from None
        try:
            child = await self.requests.catalog.find(run.team_id, ref)
        except FlowNotFound:
            raise StepFailed(f"there is no flow named {ref!r} in this workspace", "flow") from None
        if child.id == run.flow_id:
            raise StepFailed("a flow cannot call itself", "flow")
        if child.kind != "instant":
            raise StepFailed(f"{child.name} is a {child.kind} flow, not an instant one", "flow")
        try:
            await self.requests.permit(child, parent.creator)
        except RunNotAllowed as exc:
            why = "it is turned off" if exc.why == "disabled" else "it is not shared with them"
            message = f"<@{parent.creator}> (who made this flow) may not run {child.name}: {why}"
            raise StepFailed(message, "flow") from None
        return child

    def _park(self, ctx: StepContext, child_id: str) -> Park:
        return Park(
            wake_at=ctx.now() + self.poll,
            waiting_for=WAITING_PREFIX + child_id,
            output={"run_id": child_id},
        )

    async def abandon(self, step: CallFlowStep, ctx: StepContext, reason: str) -> None:
        """The waiting step will not go on (its container timed out): its child run
        is cancelled."""
        recorded = ctx.run.steps.get(ctx.step_id)
        child_id = str(recorded.output.get("run_id") or "") if recorded else ""
        child = await self.runner.get(child_id) if child_id else None
        if child is not None and not child.finished:
            request = CancelRequest(reason=reason, by=None, at=ctx.now())
            await cancel_one(self.runner, child_id, request)

    async def resume(
        self, step: CallFlowStep, ctx: StepContext, payload: Mapping[str, Any]
    ) -> Outcome:
        recorded = ctx.run.steps.get(ctx.step_id)
        child_id = str(recorded.output.get("run_id")) if recorded else ""
        child = await self.runner.get(child_id)
        if child is None:
            raise StepFailed(f"the called flow's run {child_id} is missing")
        if not child.finished:
            return self._park(ctx, child_id)
        if child.status != "succeeded":
            error = f": {child.error}" if child.error else ""
            raise StepFailed(f"the run {child.id} of {child.flow_name} {child.status}{error}")
        return Done({"run_id": child.id, "status": child.status, "outputs": dict(child.outputs)})


__all__ = ["MAX_CALL_DEPTH", "CallFlowExecutor"]
