"""`/flow connect`, `/flow connections`, their buttons and modals, and the run modal's
connection picker (used by `handlers.run_commands`).

Each listener reads the payload, calls one use case of `ConnectionService` (which decides
who may do what) and renders its answer with `cards.connections`. Secrets arrive only in
the connect modal's submission; they go straight to the service and are never logged,
echoed in an answer or put back in a view.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncBoltContext, AsyncRespond
from slack_sdk.webhook.async_client import AsyncWebhookClient

from cards import common as common_cards
from cards import connection_slots
from cards import connections as cards
from cards.errors import describe
from flows.connections import (
    DEFAULT_KIND,
    KINDS,
    SECRET_FIELDS,
    ConnectionForm,
    ConnectionProblem,
    SlotChange,
)
from flows.modal_context import ModalContext
from flows.records import FlowRecord
from handlers.commands import CommandContext, Subcommand, UsageError
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)

CONNECT_USAGE = "/flow connect [<flow> <slot> [<connection name>]]"
CONNECTIONS_USAGE = "/flow connections [<flow>]"

# The connect form's inputs by the form field a refusal names.
_FIELD_BLOCKS = {
    "name": cards.NAME_BLOCK,
    "base_url": cards.BASE_URL_BLOCK,
    "header_name": cards.HEADER_NAME_BLOCK,
}


# --------------------------------------------------------------------------- commands


async def _connect(ctx: CommandContext) -> None:
    deps, args = ctx.deps, ctx.args
    if not args:
        metadata = await _form_context(
            deps, ctx.team_id, ctx.user_id, ctx.response_url, mode="create"
        )
        view = cards.connect_form(DEFAULT_KIND, metadata)
        await deps.client.views_open(trigger_id=ctx.trigger_id, view=view)
        return
    if len(args) == 1:
        raise UsageError("Name the flow's slot too (or nothing, to create a connection).")
    if len(args) > 3:
        raise UsageError("Too many words: put names with spaces in double quotes.")
    if len(args) == 3:
        attached = await deps.connections.connect_by_name(
            ctx.team_id, ctx.user_id, args[0], args[1], args[2]
        )
        await ctx.reply(**cards.attached_message(attached))
        return
    target = await deps.connections.target_for_new(ctx.team_id, ctx.user_id, args[0], args[1])
    metadata = await _form_context(
        deps,
        ctx.team_id,
        ctx.user_id,
        ctx.response_url,
        mode="create",
        flow=target.flow.id,
        slot=target.slot,
    )
    view = cards.connect_form(target.kind, metadata, intro=cards.new_for_slot_intro(target))
    await deps.client.views_open(trigger_id=ctx.trigger_id, view=view)


async def _connections(ctx: CommandContext) -> None:
    deps = ctx.deps
    if not ctx.args:
        listing = await deps.connections.my_connections(ctx.team_id, ctx.user_id)
        await ctx.reply(**cards.my_connections(listing))
        return
    # Like `/flow show`, the words are the flow's name (quotes are optional).
    panel = await deps.connections.slots_panel(ctx.team_id, ctx.user_id, " ".join(ctx.args))
    await deps.client.views_open(
        trigger_id=ctx.trigger_id, view=connection_slots.slots_panel(panel)
    )


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "connect",
        CONNECT_USAGE,
        "Create a connection (an API credential, stored encrypted); with a flow and a slot, "
        "attach one of your connections to it",
        _connect,
    ),
    Subcommand(
        "connections",
        CONNECTIONS_USAGE,
        "My connections (masked), or a flow's connection slots: attach yours, and choose per "
        "slot whether run-only users use the owner's connection or provide their own",
        _connections,
    ),
]


# --------------------------------------------------------------------------- run modal


async def connection_pickers(
    deps: HandlerDeps, flow: FlowRecord, user_id: str
) -> list[dict[str, Any]]:
    """Run modal blocks: for each slot this person must provide ("provided by the run-only
    user"), a picker of their own connections of that kind, or a note telling them to
    create one with `/flow connect`. Empty when they provide none."""
    return cards.runner_pickers(await deps.connections.runner_slots(flow, user_id))


def read_runner_choices(state_values: Mapping[str, Any]) -> dict[str, str]:
    """The run modal's choices: {slot: connection id} from `view.state.values`."""
    chosen: dict[str, str] = {}
    for block_id, actions in (state_values or {}).items():
        if not block_id.startswith(cards.RUNNER_BLOCK_PREFIX):
            continue
        option = (actions.get(cards.RUNNER_PICK_ACTION) or {}).get("selected_option") or {}
        if option.get("value"):
            chosen[block_id[len(cards.RUNNER_BLOCK_PREFIX) :]] = str(option["value"])
    return chosen


async def chosen_connections(
    deps: HandlerDeps, flow: FlowRecord, user_id: str, state_values: Mapping[str, Any]
) -> tuple[dict[str, str], dict[str, str]]:
    """(choices, errors) of a submitted run modal: {slot: connection id}, each checked to be
    the runner's own and of the slot's kind; or errors by input block id — under `""` when
    the slot has no picker (the runner has no fitting connection yet)."""
    chosen = read_runner_choices(state_values)
    try:
        return await deps.connections.runner_choices(flow, user_id, chosen), {}
    except ConnectionProblem as exc:
        # Shown on the modal's input (plain text), not as a message.
        block_id = cards.RUNNER_BLOCK_PREFIX + (exc.field or "")
        if exc.field and block_id in (state_values or {}):
            return {}, {block_id: cards.plain_error(exc)}
        return {}, {"": cards.plain_error(exc)}


# --------------------------------------------------------------------------- payloads


def _values(view: Mapping[str, Any]) -> dict[str, Any]:
    return dict(((view.get("state") or {}).get("values")) or {})


def _text(values: Mapping[str, Any], block_id: str) -> str:
    entry = (values.get(block_id) or {}).get("value") or {}
    return str(entry.get("value") or "")


# The connect form's `flows.modal_context.ModalContext` kind: what the form needs on
# submission (mode, connection id, flow, slot, parent view, where to answer) stays on the
# server; the form's private_metadata is {"c": context id} (issue 19).
FORM_MODAL = "connection"


async def _form_context(
    deps: HandlerDeps, team: str, user: str, response_url: str, **data: str | None
) -> dict[str, str]:
    context_id = await deps.modal_contexts.open(team, user, FORM_MODAL, response_url, **data)
    return {"c": context_id}


def _metadata(view: Mapping[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


async def _opened_form(
    deps: HandlerDeps, context: AsyncBoltContext, view: Mapping[str, Any]
) -> ModalContext | None:
    """The context of a submitted connect form, if this bot opened it for this person."""
    team, user = _who(context)
    return await deps.modal_contexts.find(
        str(_metadata(view).get("c") or ""), team, user, FORM_MODAL
    )


def _action_value(body: Mapping[str, Any]) -> str:
    action = dict((body.get("actions") or [{}])[0])
    if "selected_option" in action:
        return str((action.get("selected_option") or {}).get("value") or "")
    return str(action.get("value") or "")


def _who(context: AsyncBoltContext) -> tuple[str, str]:
    return context.team_id or "", context.user_id or ""


def _intro_of(view: Mapping[str, Any]) -> str | None:
    blocks = view.get("blocks") or []
    if blocks and blocks[0].get("type") == "section":
        return str((blocks[0].get("text") or {}).get("text") or "") or None
    return None


def _slot_change(body: Mapping[str, Any], what: str) -> SlotChange:
    value = _action_value(body)
    if what == "detach":
        return SlotChange("detach", value)
    slot, _, rest = value.partition("|")
    if what == "attach":
        return SlotChange("attach", slot, connection_id=rest)
    return SlotChange("mode", slot, runner_provides=rest == cards.MODE_RUNNER)


def _form(view: Mapping[str, Any], metadata: Mapping[str, str]) -> ConnectionForm:
    """The connect modal's submission (secret fields go to the service only)."""
    values = _values(view)
    secrets = {
        field: _text(values, cards.SECRET_BLOCK_PREFIX + field)
        for fields in SECRET_FIELDS.values()
        for field in fields
        if cards.SECRET_BLOCK_PREFIX + field in values
    }
    kind_entry = (values.get(cards.KIND_BLOCK) or {}).get(cards.KIND_ACTION) or {}
    updating = metadata.get("mode") == "update"
    return ConnectionForm(
        name=_text(values, cards.NAME_BLOCK),
        base_url=_text(values, cards.BASE_URL_BLOCK),
        secrets=secrets,
        header_name=_text(values, cards.HEADER_NAME_BLOCK) or None,
        kind=str((kind_entry.get("selected_option") or {}).get("value") or DEFAULT_KIND),
        connection_id=str(metadata.get("id") or "") if updating else None,
    )


def _form_errors(view: Mapping[str, Any], exc: ConnectionProblem) -> dict[str, str]:
    """The refusal on the input it is about (the name input when it is about none)."""
    values = _values(view)
    block = _FIELD_BLOCKS.get(exc.field or "") or (
        cards.SECRET_BLOCK_PREFIX + exc.field if exc.field else cards.NAME_BLOCK
    )
    return {block if block in values else cards.NAME_BLOCK: cards.plain_error(exc)}


async def _reply(
    deps: HandlerDeps,
    response_url: str | None,
    user_id: str,
    card: common_cards.Message,
    replace: bool = False,
) -> None:
    """Answer where the person was: their response_url (ephemeral), else a DM."""
    if response_url:
        response = await AsyncWebhookClient(response_url).send(
            text=card["text"],
            blocks=card["blocks"],
            response_type="ephemeral",
            replace_original=replace,
        )
        if response.status_code == 200:
            return
        log.info("response_url answered %d; sending a DM instead", response.status_code)
    await deps.messenger.send_dm(user_id, card["text"], card["blocks"])


async def _refused(respond: AsyncRespond, exc: ConnectionProblem, replace: bool) -> None:
    await respond(**common_cards.error_message(describe(exc), None), replace_original=replace)


# --------------------------------------------------------------------------- listeners


async def _new_connection(
    body: dict[str, Any], context: AsyncBoltContext, deps: HandlerDeps
) -> None:
    team, user = _who(context)
    if (body.get("container") or {}).get("type") != "view":
        response_url = str(body.get("response_url") or "")
        metadata = await _form_context(deps, team, user, response_url, mode="create")
        view = cards.connect_form(DEFAULT_KIND, metadata)
        await deps.client.views_open(trigger_id=body["trigger_id"], view=view)
        return
    # From a flow's connections modal: create one for this slot, then attach it.
    parent = body.get("view") or {}
    flow_id = str(parent.get("private_metadata") or "")
    target = await deps.connections.target_in_panel(team, flow_id, _action_value(body))
    if target is None:
        return
    metadata = await _form_context(
        deps,
        team,
        user,
        "",
        mode="create",
        flow=target.flow.id,
        slot=target.slot,
        parent=parent["id"],
    )
    view = cards.connect_form(target.kind, metadata, intro=cards.new_for_slot_intro(target))
    await deps.client.views_push(trigger_id=body["trigger_id"], view=view)


async def _kind_changed(body: dict[str, Any], deps: HandlerDeps) -> None:
    view = body.get("view") or {}
    kind = _action_value(body)
    if kind not in KINDS:
        return
    values = _values(view)
    # Only the non-secret fields are carried over: a secret never goes back to Slack.
    new_view = cards.connect_form(
        kind,
        _metadata(view),
        name=_text(values, cards.NAME_BLOCK),
        base_url=_text(values, cards.BASE_URL_BLOCK),
        header_name=_text(values, cards.HEADER_NAME_BLOCK),
        intro=_intro_of(view),
    )
    await deps.client.views_update(view_id=view["id"], hash=view.get("hash"), view=new_view)


async def _update_connection(
    body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond, deps: HandlerDeps
) -> None:
    team, user = _who(context)
    try:
        record = await deps.connections.own(team, user, _action_value(body))
    except ConnectionProblem as exc:
        await _refused(respond, exc, replace=False)
        return
    response_url = str(body.get("response_url") or "")
    metadata = await _form_context(deps, team, user, response_url, mode="update", id=record.id)
    await deps.client.views_open(
        trigger_id=body["trigger_id"], view=cards.update_form(record, metadata)
    )


async def _delete_connection(
    body: dict[str, Any],
    context: AsyncBoltContext,
    respond: AsyncRespond,
    deps: HandlerDeps,
    confirmed: bool,
) -> None:
    team, user = _who(context)
    service, connection_id = deps.connections, _action_value(body)
    try:
        if confirmed:
            asked = await service.delete_confirmed(team, user, connection_id)
        else:
            asked = await service.ask_delete(team, user, connection_id)
    except ConnectionProblem as exc:
        # A confirmation replaces the question it answered.
        await _refused(respond, exc, replace=confirmed)
        return
    await respond(**cards.delete_answer(asked), replace_original=True)


async def _change_slot(
    body: dict[str, Any], context: AsyncBoltContext, deps: HandlerDeps, what: str
) -> None:
    view = body.get("view") or {}
    team, user = _who(context)
    flow_id = str(view.get("private_metadata") or "")
    changed = await deps.connections.change_slot(team, user, flow_id, _slot_change(body, what))
    if changed is None:
        return
    new_view = connection_slots.slots_panel(
        changed.panel, connection_slots.slot_changed_notice(changed)
    )
    await deps.client.views_update(view_id=view["id"], view=new_view)


async def _save(
    ack: AsyncAck, context: AsyncBoltContext, view: dict[str, Any], deps: HandlerDeps
) -> None:
    team, user = _who(context)
    opened = await _opened_form(deps, context, view)
    if opened is None:  # not a form this bot opened for this person here
        await ack(response_action="errors", errors={cards.NAME_BLOCK: cards.FORM_NOT_FOUND})
        return
    metadata = opened.data
    parent = str(metadata.get("parent") or "")
    try:
        saved = await deps.connections.save(
            team,
            user,
            _form(view, metadata),
            flow_id=str(metadata.get("flow") or "") or None,
            slot=str(metadata.get("slot") or "") or None,
            in_panel=bool(parent),
        )
    except ConnectionProblem as exc:
        await ack(response_action="errors", errors=_form_errors(view, exc))
        return
    await ack()
    notice = cards.saved_notice(saved)
    if saved.panel is not None:
        await deps.client.views_update(
            view_id=parent, view=connection_slots.slots_panel(saved.panel, notice)
        )
        return
    card = cards.my_connections(saved.listing, notice)
    await _reply(deps, opened.response_url, user, card, saved.updated)


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    @app.action(cards.NEW_ACTION)
    async def new_connection(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext
    ) -> None:
        await ack()
        await _new_connection(body, context, deps)

    @app.action(cards.KIND_ACTION)
    async def kind_changed(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await _kind_changed(body, deps)

    @app.action(cards.UPDATE_ACTION)
    async def update_connection(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond
    ) -> None:
        await ack()
        await _update_connection(body, context, respond, deps)

    @app.action(cards.DELETE_ACTION)
    async def delete_connection(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond
    ) -> None:
        await ack()
        await _delete_connection(body, context, respond, deps, confirmed=False)

    @app.action(cards.DELETE_CONFIRM_ACTION)
    async def delete_confirmed(
        ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext, respond: AsyncRespond
    ) -> None:
        await ack()
        await _delete_connection(body, context, respond, deps, confirmed=True)

    @app.action(cards.LIST_ACTION)
    async def show_list(ack: AsyncAck, context: AsyncBoltContext, respond: AsyncRespond) -> None:
        await ack()
        listing = await deps.connections.my_connections(*_who(context))
        await respond(**cards.my_connections(listing), replace_original=True)

    @app.action(cards.SLOT_ATTACH_ACTION)
    async def slot_attach(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        await _change_slot(body, context, deps, "attach")

    @app.action(cards.SLOT_DETACH_ACTION)
    async def slot_detach(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        await _change_slot(body, context, deps, "detach")

    @app.action(cards.SLOT_MODE_ACTION)
    async def slot_mode(ack: AsyncAck, body: dict[str, Any], context: AsyncBoltContext) -> None:
        await ack()
        await _change_slot(body, context, deps, "mode")

    @app.action(cards.RUNNER_PICK_ACTION)
    async def runner_pick(ack: AsyncAck) -> None:
        await ack()

    @app.view(cards.SAVE_CALLBACK)
    async def save(ack: AsyncAck, context: AsyncBoltContext, view: dict[str, Any]) -> None:
        await _save(ack, context, view, deps)
