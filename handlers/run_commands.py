"""Running flows by hand and reading their history: `/flow run`, the App Home Run button,
the "Run flow" modal, `/flow history` and its run details modal."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError

from cards import runs as run_cards
from cards.common import error_message, escape
from flows.catalog import CatalogError, FlowCatalog, FlowNotFound
from flows.connections import RUN_CHOICES_KEY
from flows.definition import FlowInput
from flows.permissions import Action, allowed, resolve_access
from flows.records import FlowRecord, RunRecord, RunTrigger
from flows.runner import Runner, RunRefused
from handlers.commands import CommandContext, UsageError, subcommand
from handlers.connections import chosen_connections, connection_pickers
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)

Body = dict[str, Any]
HISTORY_SIZE = 15
RUN_USAGE = "/flow run <flow> [key=value …]"
FLOW_GONE = "This flow no longer exists: it was deleted."


class RunDenied(Exception):
    """The person can't run this flow now; the message says why."""


def _runner(deps: HandlerDeps) -> Runner:
    return deps.runner


def _catalog(deps: HandlerDeps) -> FlowCatalog:
    return deps.catalog


# ---------------------------------------------------------------------------- checks


async def check_can_run(deps: HandlerDeps, flow: FlowRecord, user_id: str) -> None:
    """Who may start a flow by hand (SPEC §2, §4); RunDenied says why not."""
    name = f"*{escape(flow.name)}*"
    if flow.kind == "automated":
        raise RunDenied(
            f"{name} is an automated flow: it runs when its trigger fires, not by hand."
        )
    access = await resolve_access(flow, user_id, deps.directory)
    action = Action.RUN if flow.kind == "instant" else Action.TEST_RUN
    if not allowed(action, flow, access):
        if flow.kind == "scheduled":
            raise RunDenied(f"Only the owners of {name} can run this scheduled flow now.")
        raise RunDenied(f"You can't run {name}: ask an owner to share it with you.")
    if not flow.enabled:
        raise RunDenied(f"{name} is turned off. An owner can turn it on with `/flow on`.")


def split_run_args(args: Sequence[str]) -> tuple[str, list[str]]:
    """The flow name (quoted, or the words before the first key=value) and the rest."""
    if not args:
        raise UsageError("Name the flow to run.")
    count = 1
    while count < len(args) and "=" not in args[count] and "=" not in args[0]:
        count += 1
    return " ".join(args[:count]), list(args[count:])


def parse_assignments(flow: FlowRecord, tokens: Sequence[str]) -> dict[str, Any]:
    """`key=value` tokens → typed inputs; unknown keys and bad values are UsageErrors."""
    specs = {spec.id.lower(): spec for spec in flow.definition.inputs}
    values: dict[str, Any] = {}
    for token in tokens:
        key, sep, raw = token.partition("=")
        key = key.strip()
        if not sep or not key:
            raise UsageError(f"`{escape(token)}` is not an input: write key=value.")
        spec = specs.get(key.lower())
        if spec is None:
            known = ", ".join(f"`{s.id}`" for s in flow.definition.inputs) or "none"
            raise UsageError(
                f"*{escape(flow.name)}* has no input `{escape(key)}` (inputs: {known})."
            )
        if spec.id in values:
            raise UsageError(f"The input `{spec.id}` is given twice.")
        try:
            values[spec.id] = spec.coerce(raw)
        except ValueError as exc:
            raise UsageError(f"Input `{spec.id}`: {exc}.") from None
    return values


def with_defaults(flow: FlowRecord, values: Mapping[str, Any]) -> dict[str, Any]:
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


def _has_wait(flow: FlowRecord) -> bool:
    return any(step.type in ("delay", "approval") for step in flow.definition.walk_steps())


# ---------------------------------------------------------------------------- the modal


@dataclass
class ModalState:
    flow_id: str
    response_url: str | None = None
    channel_id: str | None = None

    def dump(self) -> str:
        return json.dumps(
            {"flow": self.flow_id, "url": self.response_url, "channel": self.channel_id}
        )

    @classmethod
    def load(cls, text: str) -> ModalState:
        data = json.loads(text or "{}")
        return cls(str(data.get("flow", "")), data.get("url"), data.get("channel"))


def run_modal_view(flow: FlowRecord, values: Mapping[str, Any], state: ModalState) -> Body:
    return run_cards.run_modal(
        flow.name,
        flow.definition.inputs,
        with_defaults(flow, values),
        state.dump(),
        flow.definition.description,
    )


def _selected(element_state: Mapping[str, Any]) -> str | None:
    """The raw value of one input element in view.state.values."""
    kind = element_state.get("type")
    if kind in ("radio_buttons", "static_select"):
        option = element_state.get("selected_option") or {}
        return option.get("value")
    if kind == "datepicker":
        return element_state.get("selected_date")
    if kind == "users_select":
        return element_state.get("selected_user")
    if kind == "conversations_select":
        return element_state.get("selected_conversation")
    if kind == "channels_select":
        return element_state.get("selected_channel")
    value = element_state.get("value")
    if value is None:
        for key in ("selected_date", "selected_user", "selected_conversation"):
            if element_state.get(key):
                return str(element_state[key])
        option = element_state.get("selected_option")
        if isinstance(option, Mapping):
            return option.get("value")
    return value


def read_modal_values(
    flow: FlowRecord, state_values: Mapping[str, Any]
) -> tuple[dict[str, Any], dict[str, str]]:
    """(typed inputs, errors by block_id) from a submitted "Run flow" modal."""
    values: dict[str, Any] = {}
    errors: dict[str, str] = {}
    for spec in flow.definition.inputs:
        block_id = run_cards.input_block_id(spec.id)
        element = (state_values.get(block_id) or {}).get(run_cards.INPUT_ACTION) or {}
        raw = _selected(element)
        if raw is None or (isinstance(raw, str) and not raw.strip() and spec.type != "text"):
            if spec.required:
                errors[block_id] = "Required."
            continue
        if spec.type == "text" and not raw.strip():
            if spec.required:
                errors[block_id] = "Required."
            continue
        try:
            values[spec.id] = spec.coerce(raw)
        except ValueError as exc:
            errors[block_id] = str(exc)[:150]
    return values, errors


# ---------------------------------------------------------------------------- starting


async def start(
    deps: HandlerDeps,
    flow: FlowRecord,
    user_id: str,
    inputs: Mapping[str, Any],
    *,
    source: str,
    response_url: str | None = None,
    channel_id: str | None = None,
    connections: Mapping[str, str] | None = None,
) -> RunRecord:
    data: dict[str, Any] = {"source": source}
    if channel_id:
        data["channel"] = channel_id
    # --- connections (issue 7): the runner's own connection per slot they provide (ids).
    if connections:
        data[RUN_CHOICES_KEY] = dict(connections)
    trigger = RunTrigger(type="manual", user=user_id, data=data)
    return await _runner(deps).start_run(
        flow, trigger, with_defaults(flow, inputs), reply_to=response_url
    )


@subcommand("run", RUN_USAGE, "Run a flow (a form asks for missing inputs)")
async def run_command(ctx: CommandContext) -> None:
    if not ctx.args:
        raise UsageError("Name the flow to run.")
    deps = ctx.deps
    name, assignments = split_run_args(ctx.args)
    try:
        flow = await _catalog(deps).find(ctx.team_id, name)
    except CatalogError as exc:
        await ctx.error(str(exc))
        return
    try:
        await check_can_run(deps, flow, ctx.user_id)
    except RunDenied as exc:
        await ctx.reply(**error_message(str(exc), None))
        return
    values = parse_assignments(flow, assignments)
    # --- connections (issue 7): slots "provided by the run-only user" are picked in the modal.
    pickers = await connection_pickers(deps, flow, ctx.user_id)
    if pickers or missing_required(flow, with_defaults(flow, values)):
        state = ModalState(flow.id, ctx.response_url, ctx.channel_id)
        view = run_modal_view(flow, values, state)
        view["blocks"] += pickers
        await deps.client.views_open(trigger_id=ctx.trigger_id, view=view)
        return
    await ctx.reply(**run_cards.run_started(flow.name, _has_wait(flow)))
    try:
        await start(
            deps,
            flow,
            ctx.user_id,
            values,
            source="slash",
            response_url=ctx.response_url,
            channel_id=ctx.channel_id,
        )
    except RunRefused as exc:
        await ctx.reply(**error_message(str(exc), None))


async def _home_run(deps: HandlerDeps, body: Body) -> None:
    user_id = _user(body)
    team_id = _team(body)
    flow_id = str(((body.get("actions") or [{}])[0]).get("value") or "")
    trigger_id = str(body.get("trigger_id") or "")
    try:
        flow = await _catalog(deps).find(team_id, flow_id)
        await check_can_run(deps, flow, user_id)
    except FlowNotFound:
        # A button names its flow by id: the flow was deleted since it was posted.
        await _notice(deps, trigger_id, user_id, "Can't run", FLOW_GONE)
        return
    except (CatalogError, RunDenied) as exc:
        await _notice(deps, trigger_id, user_id, "Can't run", str(exc))
        return
    # --- connections (issue 7): slots "provided by the run-only user" are picked in the modal.
    pickers = await connection_pickers(deps, flow, user_id)
    if flow.definition.inputs or pickers:
        # Show every input (optional ones too), as Power Automate's run panel does.
        view = run_modal_view(flow, {}, ModalState(flow.id))
        view["blocks"] += pickers
        await deps.client.views_open(trigger_id=trigger_id, view=view)
        return
    try:
        await start(deps, flow, user_id, {}, source="home")
    except RunRefused as exc:
        await _notice(deps, trigger_id, user_id, "Can't run", str(exc))
        return
    await _notice(
        deps,
        trigger_id,
        user_id,
        "Running",
        f":arrow_forward: *{escape(flow.name)}* is running. "
        "You will get the result in a direct message.",
    )


# --- sharing (issue 5): link buttons (`/flow link`) start a run like the App Home button,
# once handlers.sharing has checked that the clicker may run the flow.
run_from_button = _home_run


async def _notice(deps: HandlerDeps, trigger_id: str, user_id: str, title: str, text: str) -> None:
    try:
        await deps.client.views_open(trigger_id=trigger_id, view=run_cards.notice_view(title, text))
    except SlackApiError:
        await deps.messenger.send_dm(user_id, text)


async def _modal_submitted(ack: AsyncAck, body: Body, deps: HandlerDeps) -> None:
    view = body.get("view") or {}
    user_id = _user(body)
    team_id = _team(body) or str(view.get("team_id") or "")
    state = ModalState.load(str(view.get("private_metadata") or ""))
    try:
        flow = await _catalog(deps).find(team_id, state.flow_id)
    except CatalogError:
        # Deleted while the form was open.
        await ack(response_action="update", view=run_cards.notice_view("Can't run", FLOW_GONE))
        return
    state_values = (view.get("state") or {}).get("values") or {}
    values, errors = read_modal_values(flow, state_values)
    # --- connections (issue 7): the runner's own connection for each slot they provide.
    connections, connection_errors = await chosen_connections(deps, flow, user_id, state_values)
    if "" in connection_errors:
        notice = run_cards.notice_view("Can't run", connection_errors[""])
        await ack(response_action="update", view=notice)
        return
    errors.update(connection_errors)
    if errors:
        await ack(response_action="errors", errors=errors)
        return
    # Slack waits 3 seconds at most: close the modal, then check and start.
    await ack()
    try:
        await check_can_run(deps, flow, user_id)
        await start(
            deps,
            flow,
            user_id,
            values,
            source="modal",
            response_url=state.response_url,
            channel_id=state.channel_id,
            connections=connections,
        )
    except (RunDenied, RunRefused) as exc:
        await deps.messenger.send_dm(user_id, str(exc))


# ---------------------------------------------------------------------------- history


async def _history_scope(
    deps: HandlerDeps, flow: FlowRecord, user_id: str
) -> tuple[bool, str | None]:
    """(may see, only this starter's runs or None for all)."""
    access = await resolve_access(flow, user_id, deps.directory)
    if allowed(Action.VIEW_HISTORY, flow, access):
        return True, None
    if allowed(Action.VIEW_OWN_RUNS, flow, access):
        return True, user_id
    return False, None


@subcommand("history", "/flow history <flow>", "The last runs of a flow, with details")
async def history_command(ctx: CommandContext) -> None:
    if not ctx.args:
        raise UsageError("Name the flow.")
    deps = ctx.deps
    try:
        flow = await _catalog(deps).find(ctx.team_id, " ".join(ctx.args))
    except CatalogError as exc:
        await ctx.error(str(exc))
        return
    may_see, only = await _history_scope(deps, flow, ctx.user_id)
    if not may_see:
        await ctx.reply(**error_message(f"You can't see the runs of *{escape(flow.name)}*.", None))
        return
    runs = await _runner(deps).history(ctx.team_id, flow.id, HISTORY_SIZE, started_by=only)
    await ctx.reply(
        **run_cards.history_message(flow.name, runs, deps.clock.now(), only is not None)
    )


async def _details(deps: HandlerDeps, body: Body) -> None:
    user_id = _user(body)
    team_id = _team(body)
    run_id = str(((body.get("actions") or [{}])[0]).get("value") or "")
    trigger_id = str(body.get("trigger_id") or "")
    run = await _runner(deps).get(run_id)
    if run is None or run.team_id != team_id:
        await _notice(deps, trigger_id, user_id, "Run details", "This run no longer exists.")
        return
    try:
        flow: FlowRecord | None = await _catalog(deps).find(team_id, run.flow_id)
    except CatalogError:
        flow = None
    if flow is not None:
        may_see, only = await _history_scope(deps, flow, user_id)
        visible = may_see and (only is None or run.started_by == user_id)
    else:
        visible = run.started_by == user_id
    if not visible:
        await _notice(deps, trigger_id, user_id, "Run details", "You can't see this run.")
        return
    await deps.client.views_open(
        trigger_id=trigger_id, view=run_cards.run_details_view(run, deps.clock.now())
    )


# ---------------------------------------------------------------------------- wiring


def _team(body: Body) -> str:
    team = body.get("team") or {}
    return str(team.get("id") or (body.get("user") or {}).get("team_id") or "")


def _user(body: Body) -> str:
    return str((body.get("user") or {}).get("id") or "")


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    @app.action("run_flow")
    async def run_flow_clicked(ack: AsyncAck, body: Body) -> None:
        await ack()
        try:
            await _home_run(deps, body)
        except Exception:
            log.exception("run_flow click failed")

    @app.view(run_cards.RUN_MODAL_CALLBACK)
    async def run_modal_submitted(ack: AsyncAck, body: Body) -> None:
        try:
            await _modal_submitted(ack, body, deps)
        except Exception:
            log.exception("run modal submission failed")

    @app.action(run_cards.RUN_DETAILS_ACTION)
    async def run_details_clicked(ack: AsyncAck, body: Body) -> None:
        await ack()
        try:
            await _details(deps, body)
        except Exception:
            log.exception("run details failed")
