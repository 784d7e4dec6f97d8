"""Authoring and managing flows from Slack: `/flow new|import|edit|export|show|list|on|off|
delete`, the gallery and editor modals, and the App Home buttons that open them.

Each listener calls one `FlowCatalog` use case (which decides who may do what) and renders
with `cards`. Refusals are `flows.errors.FlowbotError`s: the slash router words those of
commands; the listeners below word those that have an answer of their own.
"""

from __future__ import annotations

import logging
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from cards import editor as editor_cards
from cards import flows as flow_cards
from cards import home as home_cards
from cards.common import error_message, section
from cards.errors import describe
from flows.catalog import FlowNotFound, SaveResult
from flows.definition import DefinitionError, dump_yaml, parse_definition
from flows.errors import FlowbotError
from flows.gallery import get_template, list_templates
from handlers.commands import CommandContext, Subcommand, UsageError
from handlers.deps import HandlerDeps
from handlers.home import publish_home

log = logging.getLogger(__name__)

Body = dict[str, Any]


def flow_ref(ctx: CommandContext) -> str:
    """The flow named by the arguments; unquoted words are taken together as one name."""
    if not ctx.args:
        raise UsageError("Name the flow.")
    return " ".join(ctx.args)


def _team(body: Body) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id", ""))


def _user(body: Body) -> str:
    return str((body.get("user") or {}).get("id", ""))


def _clicked_value(body: Body) -> str:
    return str((body.get("actions") or [{}])[0].get("value", ""))


async def _refresh_home(deps: HandlerDeps, team_id: str, user_id: str) -> None:
    """Best effort, after a change was saved and answered: a failure here must not tell
    the person that nothing changed. The home tab catches up next time it is opened."""
    try:
        await publish_home(deps, team_id, user_id)
    except Exception:
        log.exception("refreshing the home tab of %s failed", user_id)


async def open_gallery(deps: HandlerDeps, trigger_id: str, channel_id: str | None) -> None:
    choices = [editor_cards.TemplateChoice(t.key, t.title, t.description) for t in list_templates()]
    await deps.client.views_open(
        trigger_id=trigger_id, view=editor_cards.gallery_modal(choices, channel_id)
    )


def _template_editor(key: str, state: editor_cards.EditorState) -> dict[str, Any] | None:
    template = get_template(key)
    if template is None:
        return None
    return editor_cards.template_editor_modal(template.title, template.source, state)


# ---------------------------------------------------------------------------- commands


async def new_flow(ctx: CommandContext) -> None:
    await open_gallery(ctx.deps, ctx.trigger_id, ctx.channel_id)


async def import_flow(ctx: CommandContext) -> None:
    view = editor_cards.import_modal(ctx.channel_id)
    await ctx.deps.client.views_open(trigger_id=ctx.trigger_id, view=view)


async def edit_flow(ctx: CommandContext) -> None:
    flow = await ctx.deps.catalog.open_for_editing(ctx.team_id, ctx.user_id, flow_ref(ctx))
    view = editor_cards.flow_editor_modal(flow, ctx.channel_id)
    if view is None:
        await ctx.reply(**error_message(editor_cards.too_long_to_edit(), None))
        return
    await ctx.deps.client.views_open(trigger_id=ctx.trigger_id, view=view)


async def export_flow(ctx: CommandContext) -> None:
    flow = await ctx.deps.catalog.export(ctx.team_id, ctx.user_id, flow_ref(ctx))
    messages = flow_cards.export_messages(flow, dump_yaml(flow.definition))
    if messages is None:
        await ctx.reply(**error_message(flow_cards.too_long_to_export(flow, ctx.team_id), None))
        return
    for message in messages:
        await ctx.reply(**message)


async def show_flow(ctx: CommandContext) -> None:
    details = await ctx.deps.catalog.show(ctx.team_id, ctx.user_id, flow_ref(ctx))
    await ctx.reply(**flow_cards.flow_card(details.flow, details.next_run))


async def list_flows(ctx: CommandContext) -> None:
    listing = await ctx.deps.catalog.listing(ctx.team_id, ctx.user_id)
    await ctx.reply(**flow_cards.flow_list(listing.owned, listing.shared))


async def _toggle(ctx: CommandContext, enabled: bool) -> None:
    flow = await ctx.deps.catalog.set_enabled(ctx.team_id, ctx.user_id, flow_ref(ctx), enabled)
    await ctx.reply(**flow_cards.toggled(flow))
    await _refresh_home(ctx.deps, ctx.team_id, ctx.user_id)


async def turn_on(ctx: CommandContext) -> None:
    await _toggle(ctx, True)


async def turn_off(ctx: CommandContext) -> None:
    await _toggle(ctx, False)


async def delete_flow(ctx: CommandContext) -> None:
    flow = await ctx.deps.catalog.ask_to_delete(ctx.team_id, ctx.user_id, flow_ref(ctx))
    await ctx.reply(**flow_cards.delete_confirm(flow))


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("new", "/flow new", "Create a flow from a template", new_flow, max_args=0),
    Subcommand(
        "import", "/flow import", "Paste a flow definition (YAML or JSON)", import_flow, max_args=0
    ),
    Subcommand("edit", "/flow edit <flow>", "Edit a flow's definition", edit_flow),
    Subcommand("export", "/flow export <flow>", "Show a flow's definition as YAML", export_flow),
    Subcommand(
        "show", "/flow show <flow>", "Show a flow: trigger, inputs, steps, owners", show_flow
    ),
    Subcommand(
        "list", "/flow list", "Flows you own and flows shared with you", list_flows, max_args=0
    ),
    Subcommand("on", "/flow on <flow>", "Turn a flow on", turn_on),
    Subcommand("off", "/flow off <flow>", "Turn a flow off (it stops running)", turn_off),
    Subcommand("delete", "/flow delete <flow>", "Delete a flow (asks to confirm)", delete_flow),
]


# ---------------------------------------------------------------------------- saving


async def _save(
    deps: HandlerDeps, team_id: str, user_id: str, state: editor_cards.EditorState, text: str
) -> tuple[dict[str, Any], SaveResult | None]:
    """What to answer the submission with, and what was saved (None: nothing)."""
    if not text.strip():
        return editor_cards.field_errors([editor_cards.NOTHING_PASTED]), None
    try:
        definition = parse_definition(text)
        result = await deps.catalog.save(team_id, user_id, definition, state.flow_id, state.version)
    except DefinitionError as exc:
        return editor_cards.field_errors("\n".join(map(str, exc.errors)).splitlines()), None
    except FlowNotFound:
        return editor_cards.field_errors([editor_cards.DELETED_WHILE_EDITING]), None
    except FlowbotError as exc:
        return editor_cards.field_errors(describe(exc).splitlines()), None
    if result.webhook_token:
        flow = result.flow
        view = editor_cards.saved_modal(flow.name, flow.id, flow.version, result.webhook_token)
        return {"response_action": "update", "view": view}, result
    return {}, result


async def _confirm_saved(
    deps: HandlerDeps, user_id: str, channel_id: str | None, result: SaveResult
) -> None:
    card = flow_cards.saved(result.flow, result.created, token_shown=bool(result.webhook_token))
    if channel_id:
        try:
            await deps.messenger.post_ephemeral(channel_id, user_id, card["text"], card["blocks"])
            return
        except SlackApiError as exc:
            log.info("ephemeral confirmation in %s failed (%s); sending a DM", channel_id, exc)
    await deps.messenger.send_dm(user_id, card["text"], card["blocks"])


async def _submit_editor(deps: HandlerDeps, ack: AsyncAck, body: Body, view: Body) -> None:
    team_id, user_id = _team(body), _user(body)
    state = editor_cards.EditorState.load(view.get("private_metadata"))
    values = (view.get("state") or {}).get("values") or {}
    field = (values.get(editor_cards.EDITOR_BLOCK) or {}).get(editor_cards.EDITOR_ACTION) or {}
    answer, result = await _save(deps, team_id, user_id, state, str(field.get("value") or ""))
    await ack(**answer)
    if result is None:
        return
    try:
        await _confirm_saved(deps, user_id, state.channel_id, result)
    except SlackApiError:
        # The modal said it was saved; a confirmation Slack refused changes nothing.
        log.exception("confirming the save of %s failed", result.flow.id)
    await _refresh_home(deps, team_id, user_id)


# ---------------------------------------------------------------------------- deleting


async def _already_deleted(respond: AsyncRespond) -> None:
    """A second click (or one on an old question): the flow is gone already. The message
    keeps what the first click made of it; this click is told apart."""
    await respond(
        replace_original=False,
        response_type="ephemeral",
        **error_message(flow_cards.ALREADY_DELETED, None),
    )


async def _delete_confirmed(deps: HandlerDeps, body: Body, respond: AsyncRespond) -> None:
    team_id, user_id = _team(body), _user(body)
    try:
        # The click re-checks: access may have changed since the question was asked.
        flow = await deps.catalog.delete(team_id, user_id, _clicked_value(body))
    except FlowNotFound:
        await _already_deleted(respond)
        return
    except FlowbotError as exc:
        await respond(replace_original=True, **error_message(describe(exc), None))
        return
    await respond(replace_original=True, **flow_cards.deleted(flow.name))
    await _refresh_home(deps, team_id, user_id)


async def _delete_cancelled(deps: HandlerDeps, body: Body, respond: AsyncRespond) -> None:
    try:
        flow = await deps.catalog.find(_team(body), _clicked_value(body))
    except FlowNotFound:
        # Deleted already (a late click): the question keeps saying so.
        await _already_deleted(respond)
        return
    await respond(replace_original=True, **flow_cards.delete_cancelled(flow.name))


# ---------------------------------------------------------------------------- App Home


async def _home_menu_view(
    deps: HandlerDeps, team_id: str, user_id: str, verb: str, flow_id: str
) -> dict[str, Any] | None:
    """The modal a flow's menu in App Home opens: its editor, its card, or a refusal."""
    try:
        if verb == "edit":
            flow = await deps.catalog.open_for_editing(team_id, user_id, flow_id)
            view = editor_cards.flow_editor_modal(flow, None)
            if view is None:
                text = editor_cards.too_long_to_edit()
                return editor_cards.message_modal("Edit flow", [section(text)])
            return view
        if verb == "show":
            details = await deps.catalog.show(team_id, user_id, flow_id)
            card = flow_cards.flow_card(details.flow, details.next_run)
            return editor_cards.message_modal("Flow", card["blocks"])
    except FlowbotError as exc:
        return editor_cards.message_modal("Flow", [section(f":warning: {describe(exc)}")])
    return None


# ---------------------------------------------------------------------------- listeners


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    @app.action(editor_cards.GALLERY_PICK_ACTION)
    async def gallery_pick(ack: AsyncAck, body: Body) -> None:
        await ack()
        view = body.get("view") or {}
        selected = ((body.get("actions") or [{}])[0].get("selected_option")) or {}
        state = editor_cards.EditorState.load(view.get("private_metadata"))
        editor = _template_editor(str(selected.get("value", "")), state)
        if editor is None or not view.get("id"):
            return
        try:
            await deps.client.views_update(view_id=view["id"], hash=view.get("hash"), view=editor)
        except SlackApiError as exc:
            # hash_conflict: the person picked again meanwhile; that pick wins.
            log.info("updating the gallery to the editor failed: %s", exc)

    @app.view(editor_cards.GALLERY_CALLBACK)
    async def gallery_submit(ack: AsyncAck, view: Body) -> None:
        values = (view.get("state") or {}).get("values") or {}
        picked = (values.get(editor_cards.GALLERY_BLOCK) or {}).get(
            editor_cards.GALLERY_PICK_ACTION
        ) or {}
        key = str((picked.get("selected_option") or {}).get("value", ""))
        state = editor_cards.EditorState.load(view.get("private_metadata"))
        editor = _template_editor(key, state)
        if editor is None:
            errors = {editor_cards.GALLERY_BLOCK: "Pick a template."}
            await ack(response_action="errors", errors=errors)
            return
        await ack(response_action="update", view=editor)

    @app.view(editor_cards.EDITOR_CALLBACK)
    async def editor_submit(ack: AsyncAck, body: Body, view: Body) -> None:
        await _submit_editor(deps, ack, body, view)

    @app.action(flow_cards.DELETE_CONFIRM_ACTION)
    async def delete_confirmed(ack: AsyncAck, body: Body, respond: AsyncRespond) -> None:
        await ack()
        await _delete_confirmed(deps, body, respond)

    @app.action(flow_cards.DELETE_CANCEL_ACTION)
    async def delete_cancelled(ack: AsyncAck, body: Body, respond: AsyncRespond) -> None:
        await ack()
        await _delete_cancelled(deps, body, respond)

    @app.action(home_cards.GET_STARTED_ACTION)
    @app.action(home_cards.NEW_FLOW_ACTION)
    async def home_new_flow(ack: AsyncAck, body: Body) -> None:
        await ack()
        await open_gallery(deps, str(body.get("trigger_id", "")), None)

    @app.action(home_cards.FLOW_MENU_ACTION)
    async def home_flow_menu(ack: AsyncAck, body: Body) -> None:
        await ack()
        action = (body.get("actions") or [{}])[0]
        verb, flow_id = home_cards.parse_flow_menu_value(
            str((action.get("selected_option") or {}).get("value", ""))
        )
        view = await _home_menu_view(deps, _team(body), _user(body), verb, flow_id)
        if view is not None:
            await deps.client.views_open(trigger_id=str(body.get("trigger_id", "")), view=view)
