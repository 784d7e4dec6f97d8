"""Running flows by hand and reading their history: `/flow run`, the App Home Run button,
the "Run flow" modal, `/flow history` and its run details modal.

Listeners only: `flows.run_requests.RunRequests` decides (through `flows.permissions`)
and refuses with data; `cards.runs` words it.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp
from slack_sdk.errors import SlackApiError

from cards import runs as run_cards
from cards.common import escape
from cards.errors import describe
from flows.errors import FlowbotError
from flows.records import FlowRecord
from flows.run_model import RunRefused
from flows.run_requests import has_wait, missing_required, with_defaults
from handlers.commands import CommandContext, Subcommand, UsageError
from handlers.connections import chosen_connections, connection_pickers
from handlers.deps import HandlerDeps

Body = dict[str, Any]
RUN_USAGE = "/flow run <flow> [key=value …]"
HISTORY_USAGE = "/flow history <flow>"

# ---------------------------------------------------------------------------- parsing


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


# ---------------------------------------------------------------------------- the modal


# What the "Run flow" modal needs when it is submitted is kept on the server (a
# `flows.modal_context.ModalContext` of this kind); its private_metadata is the context id.
RUN_MODAL = "run"


def run_modal_view(flow: FlowRecord, values: Mapping[str, Any], context_id: str) -> Body:
    return run_cards.run_modal(
        flow.name,
        flow.definition.inputs,
        with_defaults(flow, values),
        context_id,
        flow.definition.description,
    )


async def _open_run_modal(
    deps: HandlerDeps,
    team_id: str,
    user_id: str,
    flow: FlowRecord,
    values: Mapping[str, Any],
    pickers: list[dict[str, Any]],
    trigger_id: str,
    response_url: str = "",
    channel_id: str | None = None,
) -> None:
    context_id = await deps.modal_contexts.open(
        team_id, user_id, RUN_MODAL, response_url, flow=flow.id, channel=channel_id
    )
    view = run_modal_view(flow, values, context_id)
    view["blocks"] += pickers
    await deps.client.views_open(trigger_id=trigger_id, view=view)


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


async def run_command(ctx: CommandContext) -> None:
    deps = ctx.deps
    name, assignments = split_run_args(ctx.args)
    permit = await deps.runs.permit_named(ctx.team_id, ctx.user_id, name)
    flow = permit.flow
    values = parse_assignments(flow, assignments)
    # --- connections (issue 7): slots "provided by the run-only user" are picked in the modal.
    pickers = await connection_pickers(deps, flow, ctx.user_id)
    if pickers or missing_required(flow, with_defaults(flow, values)):
        await _open_run_modal(
            deps,
            ctx.team_id,
            ctx.user_id,
            flow,
            values,
            pickers,
            ctx.trigger_id,
            ctx.response_url,
            ctx.channel_id,
        )
        return
    await ctx.reply(**run_cards.run_started(flow.name, has_wait(flow)))
    await deps.runs.start(
        permit, values, source="slash", response_url=ctx.response_url, channel_id=ctx.channel_id
    )


async def _home_run(deps: HandlerDeps, body: Body) -> None:
    user_id, team_id, trigger_id = _user(body), _team(body), _trigger(body)
    try:
        permit = await deps.runs.permit_by_id(team_id, user_id, _action_value(body))
    except FlowbotError as refusal:
        await _notice(deps, trigger_id, user_id, "Can't run", describe(refusal))
        return
    flow = permit.flow
    # --- connections (issue 7): slots "provided by the run-only user" are picked in the modal.
    pickers = await connection_pickers(deps, flow, user_id)
    if flow.definition.inputs or pickers:
        # Show every input (optional ones too), as Power Automate's run panel does.
        await _open_run_modal(deps, team_id, user_id, flow, {}, pickers, trigger_id)
        return
    try:
        await deps.runs.start(permit, {}, source="home")
    except RunRefused as refusal:
        await _notice(deps, trigger_id, user_id, "Can't run", describe(refusal))
        return
    await _notice(deps, trigger_id, user_id, "Running", run_cards.running_notice(flow.name))


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
    state = await deps.modal_contexts.find(
        view.get("private_metadata"), team_id, user_id, RUN_MODAL
    )
    if state is None:  # not a form this bot opened for this person (or a day old)
        notice = run_cards.notice_view("Can't run", run_cards.FORM_NOT_FOUND)
        await ack(response_action="update", view=notice)
        return
    try:
        flow = await deps.runs.flow_by_id(team_id, state.data.get("flow", ""))
    except FlowbotError as refusal:  # deleted while the form was open
        notice = run_cards.notice_view("Can't run", describe(refusal))
        await ack(response_action="update", view=notice)
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
        permit = await deps.runs.permit(flow, user_id)
        await deps.runs.start(
            permit,
            values,
            source="modal",
            response_url=state.response_url or None,
            channel_id=state.data.get("channel"),
            connections=connections,
        )
    except FlowbotError as refusal:
        await deps.messenger.send_dm(user_id, describe(refusal))


# ---------------------------------------------------------------------------- history


async def history_command(ctx: CommandContext) -> None:
    if not ctx.args:
        raise UsageError("Name the flow.")
    history = await ctx.deps.runs.history(ctx.team_id, ctx.user_id, " ".join(ctx.args))
    now = ctx.deps.clock.now()
    await ctx.reply(
        **run_cards.history_message(history.flow.name, history.runs, now, history.own_only)
    )


async def _details(deps: HandlerDeps, body: Body) -> None:
    user_id, trigger_id = _user(body), _trigger(body)
    try:
        run = await deps.runs.details(_team(body), user_id, _action_value(body))
    except FlowbotError as refusal:
        await _notice(deps, trigger_id, user_id, "Run details", describe(refusal))
        return
    view = run_cards.run_details_view(run, deps.clock.now())
    await deps.client.views_open(trigger_id=trigger_id, view=view)


# ---------------------------------------------------------------------------- wiring


def _team(body: Body) -> str:
    team = body.get("team") or {}
    return str(team.get("id") or (body.get("user") or {}).get("team_id") or "")


def _user(body: Body) -> str:
    return str((body.get("user") or {}).get("id") or "")


def _trigger(body: Body) -> str:
    return str(body.get("trigger_id") or "")


def _action_value(body: Body) -> str:
    """The clicked button's value (a flow id or a run id)."""
    return str(((body.get("actions") or [{}])[0]).get("value") or "")


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("run", RUN_USAGE, "Run a flow (a form asks for missing inputs)", run_command),
    Subcommand("history", HISTORY_USAGE, "The last runs of a flow, with details", history_command),
]


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    @app.action("run_flow")
    async def run_flow_clicked(ack: AsyncAck, body: Body) -> None:
        await ack()
        await _home_run(deps, body)

    @app.view(run_cards.RUN_MODAL_CALLBACK)
    async def run_modal_submitted(ack: AsyncAck, body: Body) -> None:
        await _modal_submitted(ack, body, deps)

    @app.action(run_cards.RUN_DETAILS_ACTION)
    async def run_details_clicked(ack: AsyncAck, body: Body) -> None:
        await ack()
        await _details(deps, body)


# The raw value of one modal input (also the `ask` step's form, `handlers.asks`).
selected_value = _selected
