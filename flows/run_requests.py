"""What a person asks of runs: starting a flow by hand (`/flow run`, the App Home and link
buttons, the "Run flow" modal), reading a flow's history and opening one run's details.

Every decision is made by `flows.permissions` (SPEC §2, §4): starting goes through a
`RunPermit`, which only `RunRequests.permit` hands out; history and details through
`may_view_run`. Refusals are `FlowbotError`s carrying data; `cards.runs` words them.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from flows.catalog import FlowCatalog
from flows.connections import RUN_CHOICES_KEY
from flows.definition import FlowInput, ManualTrigger
from flows.errors import FlowbotError, FlowNotFound
from flows.permissions import (
    Action,
    allowed,
    may_view_run,
    may_view_run_of_deleted_flow,
    resolve_access,
)
from flows.ports import Directory
from flows.records import FlowRecord, RunRecord, RunTrigger
from flows.runner import Runner
from flows.templating import TemplateError
from flows.trigger_log import Reason, TriggerLog, when_allows

HISTORY_SIZE = 15

# ---------------------------------------------------------------------------- refusals


class RunNotAllowed(FlowbotError):
    """This person can't start this flow by hand now. `why`: "automated" (its trigger
    starts it), "owners_only" (a scheduled flow: owners may run it now), "not_shared"
    (no access) or "disabled" (turned off)."""

    def __init__(self, flow_name: str, user_id: str, why: str) -> None:
        super().__init__(f"{user_id} can't run flow {flow_name!r} now ({why}).")
        self.flow_name = flow_name
        self.user_id = user_id
        self.why = why


class FlowGone(FlowbotError):
    """A button or a form names its flow by id, and that flow was deleted since."""

    def __init__(self, flow_id: str) -> None:
        super().__init__(f"The flow {flow_id} no longer exists.")
        self.flow_id = flow_id


class HistoryNotAllowed(FlowbotError):
    """This person may see no run of the flow."""

    def __init__(self, flow_name: str, user_id: str) -> None:
        super().__init__(f"{user_id} may not see the runs of flow {flow_name!r}.")
        self.flow_name = flow_name
        self.user_id = user_id


class ConditionNotMet(FlowbotError):
    """The manual trigger's `when` was false (or could not be evaluated): no run."""

    def __init__(self, flow_name: str) -> None:
        super().__init__(f"{flow_name}: its trigger condition is false")
        self.flow_name = flow_name


def _when_refuses(flow: FlowRecord, trigger: RunTrigger) -> tuple[Reason, str] | None:
    """A manual trigger's `when` about this start: None (allowed) or the trigger log's
    reason and detail. Only a manual trigger's `when` applies to a start by hand: a
    schedule's or an event's condition is about its slot or event, and a test run by hand
    has neither (as a Power Automate trigger condition does not filter a manual test)."""
    if not isinstance(flow.definition.trigger, ManualTrigger):
        return None
    try:
        if when_allows(flow.definition.trigger.when, "manual", trigger.user, trigger.data):
            return None
    except TemplateError as error:
        return "condition_error", f"started by {trigger.user}: {error}"
    return "filtered", f"started by {trigger.user}"


class RunNotFound(FlowbotError):
    """No such run in the workspace (or it is gone)."""

    def __init__(self, run_id: str) -> None:
        super().__init__(f"There is no run {run_id}.")
        self.run_id = run_id


class RunHidden(FlowbotError):
    """The run exists, but this person may not see it."""

    def __init__(self, run_id: str, user_id: str) -> None:
        super().__init__(f"{user_id} may not see run {run_id}.")
        self.run_id = run_id
        self.user_id = user_id


# ---------------------------------------------------------------------------- inputs


def with_defaults(flow: FlowRecord, values: Mapping[str, Any]) -> dict[str, Any]:
    """The inputs given, plus the defaults of those not given."""
    out = dict(values)
    for spec in flow.definition.inputs:
        if spec.id not in out and spec.default is not None:
            out[spec.id] = spec.default
    return out


def missing_required(flow: FlowRecord, values: Mapping[str, Any]) -> list[FlowInput]:
    return [
        spec
        for spec in flow.definition.inputs
        if spec.required and values.get(spec.id) in (None, "")
    ]


def has_wait(flow: FlowRecord) -> bool:
    """Does a run of it wait somewhere (a delay, an approval)?"""
    return any(
        step.type in ("delay", "approval", "call_flow") for step in flow.definition.walk_steps()
    )


# ---------------------------------------------------------------------------- use cases


@dataclass(frozen=True)
class RunPermit:
    """`user_id` may start `flow` by hand: checked by `RunRequests.permit`."""

    flow: FlowRecord
    user_id: str


@dataclass(frozen=True)
class RunHistory:
    """The last runs of a flow a person may see; `own_only`: only the runs they started."""

    flow: FlowRecord
    runs: list[RunRecord]
    own_only: bool


def _run_action(flow: FlowRecord) -> Action:
    # Running a scheduled flow by hand is a test run (owners only).
    return Action.RUN if flow.kind == "instant" else Action.TEST_RUN


class RunRequests:
    def __init__(
        self,
        catalog: FlowCatalog,
        runner: Runner,
        directory: Directory,
        trigger_log: TriggerLog | None = None,
    ) -> None:
        self.catalog = catalog
        self.runner = runner
        self.directory = directory
        self.trigger_log = trigger_log

    async def flow_by_id(self, team_id: str, flow_id: str) -> FlowRecord:
        """The flow a button or form names; FlowGone if it was deleted since."""
        try:
            return await self.catalog.find(team_id, flow_id)
        except FlowNotFound:
            raise FlowGone(flow_id) from None

    async def permit(self, flow: FlowRecord, user_id: str) -> RunPermit:
        """May `user_id` start `flow` by hand now? RunNotAllowed says why not."""
        if flow.kind == "automated":
            raise RunNotAllowed(flow.name, user_id, "automated")
        access = await resolve_access(flow, user_id, self.directory)
        if not allowed(_run_action(flow), flow, access):
            why = "owners_only" if flow.kind == "scheduled" else "not_shared"
            raise RunNotAllowed(flow.name, user_id, why)
        if not flow.enabled:
            raise RunNotAllowed(flow.name, user_id, "disabled")
        return RunPermit(flow, user_id)

    async def permit_named(self, team_id: str, user_id: str, ref: str) -> RunPermit:
        """`/flow run <name>`: the flow by name or id, and the permission to start it."""
        return await self.permit(await self.catalog.find(team_id, ref), user_id)

    async def permit_by_id(self, team_id: str, user_id: str, flow_id: str) -> RunPermit:
        """A Run button: the flow it names (FlowGone if deleted) and the permission."""
        return await self.permit(await self.flow_by_id(team_id, flow_id), user_id)

    async def start(
        self,
        permit: RunPermit,
        inputs: Mapping[str, Any],
        *,
        source: str,
        response_url: str | None = None,
        channel_id: str | None = None,
        connections: Mapping[str, str] | None = None,
    ) -> RunRecord:
        """Start the run (defaults filled in); `source` says where from (slash, home,
        modal). `connections`: the runner's own connection per slot they provide (ids).
        RunRefused if the flow was turned off meanwhile."""
        data: dict[str, Any] = {"source": source}
        if channel_id:
            data["channel"] = channel_id
        if connections:
            data[RUN_CHOICES_KEY] = dict(connections)
        trigger = RunTrigger(type="manual", user=permit.user_id, data=data)
        flow = permit.flow
        refused = _when_refuses(flow, trigger)
        if refused is not None:
            if self.trigger_log is not None:
                reason, detail = refused
                await self.trigger_log.record(
                    flow.team_id, flow.id, "manual", reason, detail=detail
                )
            raise ConditionNotMet(flow.name)
        return await self.runner.start_run(
            flow, trigger, with_defaults(flow, inputs), reply_to=response_url
        )

    async def history(
        self, team_id: str, user_id: str, ref: str, limit: int = HISTORY_SIZE
    ) -> RunHistory:
        """The last runs of the flow: every run for owners, their own for run-only users."""
        flow = await self.catalog.find(team_id, ref)
        access = await resolve_access(flow, user_id, self.directory)
        # Runs nobody in particular started (a schedule's) stand for everyone's runs.
        if may_view_run(flow, access, user_id, None):
            only = None
        elif may_view_run(flow, access, user_id, user_id):
            only = user_id
        else:
            raise HistoryNotAllowed(flow.name, user_id)
        runs = await self.runner.history(team_id, flow.id, limit, started_by=only)
        return RunHistory(flow, runs, own_only=only is not None)

    async def details(self, team_id: str, user_id: str, run_id: str) -> RunRecord:
        """One run, if this person may see it: RunNotFound or RunHidden otherwise."""
        run = await self.runner.get(run_id)
        if run is None or run.team_id != team_id:
            raise RunNotFound(run_id)
        try:
            flow = await self.catalog.find(team_id, run.flow_id)
        except FlowNotFound:
            visible = may_view_run_of_deleted_flow(user_id, run.started_by)
        else:
            access = await resolve_access(flow, user_id, self.directory)
            visible = may_view_run(flow, access, user_id, run.started_by)
        if not visible:
            raise RunHidden(run_id, user_id)
        return run
