"""`/flow connect`, `/flow connections`, their buttons and modals, and the run modal's
connection picker (used by `handlers.run_commands`).

Secrets arrive only in the connect modal's submission; they go straight to the
`ConnectionService` and are never logged, echoed in an answer or put back in a view.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.webhook.async_client import AsyncWebhookClient

from cards import common as common_cards
from cards import connections as cards
from cards.common import escape
from flows.catalog import CatalogError
from flows.connections import (
    DEFAULT_KIND,
    FIELD_LABELS,
    HEADER_NAME_KINDS,
    KIND_LABELS,
    KINDS,
    OPTIONAL_SECRET_FIELDS,
    SECRET_FIELDS,
    ConnectionProblem,
    ConnectionRecord,
    ConnectionService,
    SlotState,
    kind_label,
    slot_accepts,
    slot_spec,
    slots_runner_provides,
)
from flows.permissions import Access, Action, allowed, resolve_access
from flows.records import FlowRecord
from handlers.commands import CommandContext, UsageError, subcommand
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)

CONNECT_USAGE = "/flow connect [<flow> <slot> [<connection name>]]"
CONNECTIONS_USAGE = "/flow connections [<flow>]"


def _service(deps: HandlerDeps) -> ConnectionService:
    return deps.connections


# --------------------------------------------------------------------------- flows


async def _find_flow(deps: HandlerDeps, team_id: str, name: str) -> FlowRecord:
    """The flow by name or id; UsageError (shown with the usage line) if there is none."""
    try:
        return await deps.catalog.find(team_id, name)
    except CatalogError as exc:
        raise UsageError(str(exc)) from None


async def _flow_by_id(deps: HandlerDeps, team_id: str, flow_id: str) -> FlowRecord | None:
    return await _service(deps).flows.get(team_id, flow_id)


# --------------------------------------------------------------------------- rendering


def _kinds() -> list[tuple[str, str]]:
    return [(kind, KIND_LABELS[kind]) for kind in KINDS]


def _secret_fields(kind: str) -> list[tuple[str, str, bool]]:
    return [
        (name, FIELD_LABELS[name], name in OPTIONAL_SECRET_FIELDS) for name in SECRET_FIELDS[kind]
    ]


def _connect_view(
    kind: str,
    metadata: Mapping[str, Any],
    *,
    name: str = "",
    base_url: str = "",
    header_name: str = "",
    updating: ConnectionRecord | None = None,
    intro: str | None = None,
) -> dict[str, Any]:
    return cards.connect_modal(
        kinds=_kinds(),
        kind=kind,
        secret_fields=_secret_fields(kind),
        metadata=metadata,
        asks_header_name=kind in HEADER_NAME_KINDS,
        name=name,
        base_url=base_url,
        header_name=header_name,
        updating=updating.name if updating else None,
        intro=intro,
    )


async def _my_list(
    deps: HandlerDeps, team_id: str, user_id: str, notice: str | None = None
) -> common_cards.Message:
    service = _service(deps)
    items: list[dict[str, Any]] = []
    for record in await service.mine(team_id, user_id):
        used_by = [flow.name for flow in await service.usage(team_id, record.id)]
        items.append(
            {
                "id": record.id,
                "name": record.name,
                "label": record.label,
                "base_url": record.base_url,
                "hint": record.hint,
                "header_name": record.header_name,
                "used_by": used_by,
            }
        )
    return cards.my_connections_message(items, notice)


def _filled_text(state: SlotState, viewer: str) -> str:
    record = state.connection
    if record is None:
        if state.binding.connection_id:
            return ":warning: _Its connection was deleted: attach another._"
        return "_Empty: steps using it fail until an owner attaches a connection._"
    whose = "your" if record.owner == viewer else f"<@{record.owner}>'s"
    text = f"Uses {whose} connection *{escape(record.name)}* ({escape(record.host)})"
    if record.owner == viewer:
        text += f" · `{record.hint}`"
    return text


def _runner_text(state: SlotState) -> str:
    if state.runner_provides:
        return ":key: When you run it, you choose one of your own connections for this."
    return "Runs with the owner's connection."


async def _flow_modal(
    deps: HandlerDeps, flow: FlowRecord, user_id: str, access: Access, notice: str | None = None
) -> dict[str, Any]:
    service = _service(deps)
    is_owner = allowed(Action.ATTACH_CONNECTION, flow, access)
    mine = await service.mine(flow.team_id, user_id) if is_owner else []
    items: list[dict[str, Any]] = []
    for state in await service.slots(flow):
        fitting = [c for c in mine if slot_accepts(state.kind, c.kind)]
        selected = (
            state.connection.id
            if state.connection is not None and state.connection.owner == user_id
            else None
        )
        filled = _filled_text(state, user_id)
        if is_owner and flow.kind == "instant":
            filled += "\nRun-only users " + (
                "provide their own connection."
                if state.runner_provides
                else "use the owner's connection."
            )
        items.append(
            {
                "slot": state.slot,
                "kind_label": kind_label(state.kind) if state.kind in KINDS else "HTTP",
                "description": state.description,
                "filled_text": filled,
                "filled": state.binding.connection_id is not None,
                "mine": [(c.id, f"{c.name} ({c.host})") for c in fitting],
                "selected": selected,
                "runner_provides": state.runner_provides,
                "show_mode": flow.kind == "instant",
                "runner_text": _runner_text(state),
            }
        )
    return cards.flow_connections_modal(
        flow_id=flow.id, flow_name=flow.name, slots=items, is_owner=is_owner, notice=notice
    )


# --------------------------------------------------------------------------- commands


@subcommand(
    "connect",
    CONNECT_USAGE,
    "Create a connection (an API credential, stored encrypted); with a flow and a slot, "
    "attach one of your connections to it",
)
async def _connect(ctx: CommandContext) -> None:
    deps = ctx.deps
    service = _service(deps)
    args = ctx.args
    if not args:
        metadata = {"mode": "create", "response_url": ctx.response_url}
        await deps.client.views_open(
            trigger_id=ctx.trigger_id, view=_connect_view(DEFAULT_KIND, metadata)
        )
        return
    if len(args) == 1:
        raise UsageError("Name the flow's slot too (or nothing, to create a connection).")
    if len(args) > 3:
        raise UsageError("Too many words: put names with spaces in double quotes.")
    flow = await _find_flow(deps, ctx.team_id, args[0])
    access = await resolve_access(flow, ctx.user_id, deps.directory)
    if not allowed(Action.ATTACH_CONNECTION, flow, access):
        await ctx.error(f"Only owners of “{flow.name}” can attach connections to it.")
        return
    slot = args[1]
    spec = slot_spec(flow, slot)
    if spec is None:
        names = ", ".join(f"`{s}`" for s in flow.definition.slot_names()) or "none"
        raise UsageError(f"“{flow.name}” has no connection slot `{slot}` (its slots: {names}).")
    if len(args) == 2:
        kind = spec.kind if spec.kind in KINDS else DEFAULT_KIND
        metadata = {
            "mode": "create",
            "flow": flow.id,
            "slot": slot,
            "response_url": ctx.response_url,
        }
        intro = f"A new connection for slot `{slot}` of *{escape(flow.name)}*."
        await deps.client.views_open(
            trigger_id=ctx.trigger_id, view=_connect_view(kind, metadata, intro=intro)
        )
        return
    try:
        record = await service.own_by_name(ctx.team_id, ctx.user_id, args[2])
        await service.attach(flow, access, ctx.user_id, slot, record.id)
    except ConnectionProblem as exc:
        await ctx.error(str(exc))
        return
    await ctx.reply(
        **common_cards.info_message(
            f":link: Slot `{slot}` of *{escape(flow.name)}* now uses your connection "
            f"*{escape(record.name)}*: its steps act as you. Co-owners can use it in this "
            "flow only, and nobody can read it."
        )
    )


@subcommand(
    "connections",
    CONNECTIONS_USAGE,
    "My connections (masked), or a flow's connection slots: attach yours, and choose per "
    "slot whether run-only users use the owner's connection or provide their own",
)
async def _connections(ctx: CommandContext) -> None:
    deps = ctx.deps
    if not ctx.args:
        await ctx.reply(**await _my_list(deps, ctx.team_id, ctx.user_id))
        return
    # Like `/flow show`, the words are the flow's name (quotes are optional).
    flow = await _find_flow(deps, ctx.team_id, " ".join(ctx.args))
    access = await resolve_access(flow, ctx.user_id, deps.directory)
    if not (
        allowed(Action.ATTACH_CONNECTION, flow, access)
        or allowed(Action.PROVIDE_OWN_CONNECTION, flow, access)
    ):
        await ctx.error(f"You don't have access to “{flow.name}”.")
        return
    view = await _flow_modal(deps, flow, ctx.user_id, access)
    await deps.client.views_open(trigger_id=ctx.trigger_id, view=view)


# --------------------------------------------------------------------------- run modal


async def connection_pickers(
    deps: HandlerDeps, flow: FlowRecord, user_id: str
) -> list[dict[str, Any]]:
    """Run modal blocks: for each slot this person must provide ("provided by the run-only
    user"), a picker of their own connections of that kind, or a note telling them to
    create one with `/flow connect`. Empty when they provide none."""
    service = deps.connections
    access = await resolve_access(flow, user_id, deps.directory)
    items: list[dict[str, Any]] = []
    for slot in slots_runner_provides(flow, access):
        spec = slot_spec(flow, slot)
        options = await service.runner_options(flow, user_id, slot)
        items.append(
            {
                "slot": slot,
                "kind_label": kind_label(spec.kind) if spec.kind in KINDS else "HTTP",
                "description": spec.description or "",
                "options": [(c.id, f"{c.name} ({c.host})") for c in options],
            }
        )
    return cards.runner_slot_blocks(items)


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
    service = deps.connections
    access = await resolve_access(flow, user_id, deps.directory)
    chosen = read_runner_choices(state_values)
    try:
        return await service.check_runner_choices(flow, access, user_id, chosen), {}
    except ConnectionProblem as exc:
        block_id = cards.RUNNER_BLOCK_PREFIX + (exc.field or "")
        if exc.field and block_id in (state_values or {}):
            return {}, {block_id: str(exc)}
        return {}, {"": str(exc)}


# --------------------------------------------------------------------------- listeners


def _values(view: Mapping[str, Any]) -> dict[str, Any]:
    return dict(((view.get("state") or {}).get("values")) or {})


def _text(values: Mapping[str, Any], block_id: str) -> str:
    entry = (values.get(block_id) or {}).get("value") or {}
    return str(entry.get("value") or "")


def _metadata(view: Mapping[str, Any]) -> dict[str, Any]:
    try:
        data = json.loads(view.get("private_metadata") or "{}")
    except ValueError:
        return {}
    return data if isinstance(data, dict) else {}


def _team(body: Mapping[str, Any]) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")


def _user(body: Mapping[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def _action(body: Mapping[str, Any]) -> dict[str, Any]:
    actions = body.get("actions") or [{}]
    return dict(actions[0])


def _action_value(body: Mapping[str, Any]) -> str:
    action = _action(body)
    if "selected_option" in action:
        return str((action.get("selected_option") or {}).get("value") or "")
    return str(action.get("value") or "")


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


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    client = deps.client

    @app.action(cards.NEW_ACTION)
    async def new_connection(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        container = body.get("container") or {}
        if container.get("type") == "view":
            # From a flow's connections modal: create one for this slot, then attach it.
            view = body.get("view") or {}
            flow = await _flow_by_id(deps, _team(body), str(view.get("private_metadata") or ""))
            slot = _action_value(body)
            spec = slot_spec(flow, slot) if flow else None
            if flow is None or spec is None:
                return
            kind = spec.kind if spec.kind in KINDS else DEFAULT_KIND
            metadata = {"mode": "create", "flow": flow.id, "slot": slot, "parent": view["id"]}
            intro = f"A new connection for slot `{slot}` of *{escape(flow.name)}*."
            await client.views_push(
                trigger_id=body["trigger_id"], view=_connect_view(kind, metadata, intro=intro)
            )
            return
        metadata = {"mode": "create", "response_url": body.get("response_url") or ""}
        await client.views_open(
            trigger_id=body["trigger_id"], view=_connect_view(DEFAULT_KIND, metadata)
        )

    @app.action(cards.KIND_ACTION)
    async def kind_changed(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        view = body.get("view") or {}
        kind = _action_value(body)
        if kind not in KINDS:
            return
        values = _values(view)
        # Only the non-secret fields are carried over: a secret never goes back to Slack.
        new_view = _connect_view(
            kind,
            _metadata(view),
            name=_text(values, cards.NAME_BLOCK),
            base_url=_text(values, cards.BASE_URL_BLOCK),
            header_name=_text(values, cards.HEADER_NAME_BLOCK),
            intro=_intro_of(view),
        )
        await client.views_update(view_id=view["id"], hash=view.get("hash"), view=new_view)

    @app.action(cards.UPDATE_ACTION)
    async def update_connection(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        service = _service(deps)
        try:
            record = await service.own(_team(body), _user(body), _action_value(body))
        except ConnectionProblem as exc:
            await respond(**common_cards.error_message(str(exc), None), replace_original=False)
            return
        metadata = {
            "mode": "update",
            "id": record.id,
            "response_url": body.get("response_url") or "",
        }
        view = _connect_view(
            record.kind,
            metadata,
            name=record.name,
            base_url=record.base_url,
            header_name=record.header_name or "",
            updating=record,
            intro=f"New credentials for *{escape(record.name)}* ({record.label}); "
            f"the current ones end in `{record.hint}`. Flows using it switch at once.",
        )
        await client.views_open(trigger_id=body["trigger_id"], view=view)

    @app.action(cards.DELETE_ACTION)
    async def delete_connection(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        service = _service(deps)
        team, user = _team(body), _user(body)
        try:
            record = await service.own(team, user, _action_value(body))
        except ConnectionProblem as exc:
            await respond(**common_cards.error_message(str(exc), None), replace_original=False)
            return
        used = await service.usage(team, record.id)
        if used:
            card = cards.delete_confirm_message(record.id, record.name, [f.name for f in used])
            await respond(**card, replace_original=True)
            return
        await service.delete(team, user, record.id)
        notice = f":wastebasket: Deleted *{escape(record.name)}*."
        await respond(**await _my_list(deps, team, user, notice), replace_original=True)

    @app.action(cards.DELETE_CONFIRM_ACTION)
    async def delete_confirmed(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        service = _service(deps)
        team, user = _team(body), _user(body)
        try:
            record = await service.own(team, user, _action_value(body))
            broken = await service.delete(team, user, record.id)
        except ConnectionProblem as exc:
            await respond(**common_cards.error_message(str(exc), None), replace_original=True)
            return
        notice = f":wastebasket: Deleted *{escape(record.name)}*."
        if broken:
            names = ", ".join(f"“{escape(f.name)}”" for f in broken)
            notice += f" These flows need another connection now: {names}."
        await respond(**await _my_list(deps, team, user, notice), replace_original=True)

    @app.action(cards.LIST_ACTION)
    async def show_list(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await respond(**await _my_list(deps, _team(body), _user(body)), replace_original=True)

    async def _slot_change(body: dict[str, Any], change: str) -> None:
        service = _service(deps)
        view = body.get("view") or {}
        team, user = _team(body), _user(body)
        flow = await _flow_by_id(deps, team, str(view.get("private_metadata") or ""))
        if flow is None:
            return
        access = await resolve_access(flow, user, deps.directory)
        value = _action_value(body)
        notice: str
        try:
            if change == "attach":
                slot, _, connection_id = value.partition("|")
                flow = await service.attach(flow, access, user, slot, connection_id)
                notice = f":link: `{escape(slot)}` now uses your connection."
            elif change == "detach":
                flow = await service.detach(flow, access, user, value)
                notice = f"`{escape(value)}` is empty now."
            else:
                slot, _, mode = value.partition("|")
                provides = mode == cards.MODE_RUNNER
                flow = await service.set_runner_provides(flow, access, user, slot, provides)
                notice = f"`{escape(slot)}`: " + (
                    "run-only users provide their own connection."
                    if provides
                    else "run-only users use the owner's connection."
                )
        except ConnectionProblem as exc:
            notice = f":warning: {escape(str(exc))}"
        new_view = await _flow_modal(deps, flow, user, access, notice)
        await client.views_update(view_id=view["id"], view=new_view)

    @app.action(cards.SLOT_ATTACH_ACTION)
    async def slot_attach(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await _slot_change(body, "attach")

    @app.action(cards.SLOT_DETACH_ACTION)
    async def slot_detach(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await _slot_change(body, "detach")

    @app.action(cards.SLOT_MODE_ACTION)
    async def slot_mode(ack: AsyncAck, body: dict[str, Any]) -> None:
        await ack()
        await _slot_change(body, "mode")

    @app.action(cards.RUNNER_PICK_ACTION)
    async def runner_pick(ack: AsyncAck) -> None:
        await ack()

    @app.view(cards.SAVE_CALLBACK)
    async def save(ack: AsyncAck, body: dict[str, Any], view: dict[str, Any]) -> None:
        await _save(ack, body, view, deps)


def _intro_of(view: Mapping[str, Any]) -> str | None:
    blocks = view.get("blocks") or []
    if blocks and blocks[0].get("type") == "section":
        return str((blocks[0].get("text") or {}).get("text") or "") or None
    return None


_FIELD_BLOCKS = {
    "name": cards.NAME_BLOCK,
    "base_url": cards.BASE_URL_BLOCK,
    "header_name": cards.HEADER_NAME_BLOCK,
}


async def _save(
    ack: AsyncAck, body: dict[str, Any], view: dict[str, Any], deps: HandlerDeps
) -> None:
    service = _service(deps)
    team, user = _team(body), _user(body)
    metadata = _metadata(view)
    values = _values(view)
    secrets = {
        field: _text(values, cards.SECRET_BLOCK_PREFIX + field)
        for fields in SECRET_FIELDS.values()
        for field in fields
        if cards.SECRET_BLOCK_PREFIX + field in values
    }
    name = _text(values, cards.NAME_BLOCK)
    base_url = _text(values, cards.BASE_URL_BLOCK)
    header_name = _text(values, cards.HEADER_NAME_BLOCK) or None
    try:
        if metadata.get("mode") == "update":
            record = await service.update_credentials(
                team,
                user,
                str(metadata.get("id") or ""),
                secrets=secrets,
                base_url=base_url,
                header_name=header_name,
                name=name,
            )
            verb = "Updated"
        else:
            kind_entry = (values.get(cards.KIND_BLOCK) or {}).get(cards.KIND_ACTION) or {}
            kind = str((kind_entry.get("selected_option") or {}).get("value") or DEFAULT_KIND)
            record = await service.create(
                team,
                user,
                name=name,
                kind=kind,
                base_url=base_url,
                secrets=secrets,
                header_name=header_name,
            )
            verb = "Saved"
    except ConnectionProblem as exc:
        block = _FIELD_BLOCKS.get(exc.field or "") or (
            cards.SECRET_BLOCK_PREFIX + exc.field if exc.field else cards.NAME_BLOCK
        )
        if block not in values:
            block = cards.NAME_BLOCK
        await ack(response_action="errors", errors={block: str(exc)})
        return
    await ack()
    notice = f":lock: {verb} *{escape(record.name)}* (`{record.hint}`)."
    flow_id, slot = metadata.get("flow"), metadata.get("slot")
    if flow_id and slot:
        flow = await _flow_by_id(deps, team, str(flow_id))
        if flow is not None:
            access = await resolve_access(flow, user, deps.directory)
            try:
                flow = await service.attach(flow, access, user, str(slot), record.id)
                notice += f" Slot `{escape(str(slot))}` of *{escape(flow.name)}* now uses it."
            except ConnectionProblem as exc:
                notice += f" :warning: {escape(str(exc))}"
            parent = metadata.get("parent")
            if parent:
                new_view = await _flow_modal(deps, flow, user, access, notice)
                await deps.client.views_update(view_id=str(parent), view=new_view)
                return
    replace = metadata.get("mode") == "update"
    card = await _my_list(deps, team, user, notice)
    await _reply(deps, str(metadata.get("response_url") or ""), user, card, replace)
