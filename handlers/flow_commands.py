"""Authoring and managing flows from Slack: `/flow new|import|edit|export|show|list|on|off|
delete`, the gallery and editor modals, and the App Home buttons that open them."""

from __future__ import annotations

import functools
import logging
from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_sdk.errors import SlackApiError

from cards import editor as editor_cards
from cards import flows as flow_cards
from cards import home as home_cards
from cards.common import error_message, escape, section
from flows.catalog import CatalogError, FlowCatalog, FlowNotFound, SaveResult
from flows.definition import DefinitionError, ScheduleTrigger, dump_yaml, parse_definition
from flows.gallery import get_template, list_templates
from flows.permissions import Action
from flows.records import FlowRecord
from handlers.commands import CommandContext, UsageError, subcommand
from handlers.deps import HandlerDeps
from handlers.home import publish_home

log = logging.getLogger(__name__)

Body = dict[str, Any]


def catalog_of(deps: HandlerDeps) -> FlowCatalog:
    return deps.catalog


def flow_ref(ctx: CommandContext) -> str:
    """The flow named by the arguments; unquoted words are taken together as one name."""
    if not ctx.args:
        raise UsageError("Name the flow.")
    return " ".join(ctx.args)


def catalog_errors(
    handler: Callable[[CommandContext], Awaitable[None]],
) -> Callable[[CommandContext], Awaitable[None]]:
    """Refusals from the catalog become short ephemeral errors (unknown flows with usage)."""

    @functools.wraps(handler)
    async def guarded(ctx: CommandContext) -> None:
        try:
            await handler(ctx)
        except FlowNotFound as exc:
            await ctx.error(str(exc))
        except CatalogError as exc:
            await ctx.reply(**error_message(str(exc), None))

    return guarded


def _team(body: Body) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id", ""))


def _user(body: Body) -> str:
    return str((body.get("user") or {}).get("id", ""))


async def _refresh_home(deps: HandlerDeps, team_id: str, user_id: str) -> None:
    try:
        await publish_home(deps, team_id, user_id)
    except Exception:
        # The home tab catches up next time it is opened; the change itself is saved.
        log.exception("refreshing the home tab of %s failed", user_id)


# ---------------------------------------------------------------------------- modals


async def open_gallery(deps: HandlerDeps, trigger_id: str, channel_id: str | None) -> None:
    choices = [editor_cards.TemplateChoice(t.key, t.title, t.description) for t in list_templates()]
    await deps.client.views_open(
        trigger_id=trigger_id, view=editor_cards.gallery_modal(choices, channel_id)
    )


def _edit_view(flow: FlowRecord, channel_id: str | None) -> dict[str, Any] | None:
    """The editor prefilled with the flow, or None if its YAML is too long for Slack."""
    text = dump_yaml(flow.definition)
    if len(text) > editor_cards.EDITOR_MAX_CHARS:
        return None
    state = editor_cards.EditorState(flow.id, flow.version, channel_id)
    intro = (
        f"Editing *{escape(flow.name)}*, version {flow.version}. "
        "Saving makes a new version; earlier ones are kept."
    )
    return editor_cards.editor_modal(state, text, title="Edit flow", intro=intro)


ALREADY_DELETED = "This flow is already deleted; nothing else was changed."

TOO_LONG_TO_EDIT = (
    "This flow is too long for Slack's editor ({limit} characters). Export it, edit the "
    "file, and import it with `python -m bot flows import FILE --team T --user U`."
)


def _template_editor(key: str, state: editor_cards.EditorState) -> dict[str, Any] | None:
    template = get_template(key)
    if template is None:
        return None
    intro = (
        f"Template *{escape(template.title)}*. Change what you need (the name first), then Save."
    )
    return editor_cards.editor_modal(state, template.source, title="New flow", intro=intro)


# ---------------------------------------------------------------------------- commands


@subcommand("new", "/flow new", "Create a flow from a template", max_args=0)
async def new_flow(ctx: CommandContext) -> None:
    await open_gallery(ctx.deps, ctx.trigger_id, ctx.channel_id)


@subcommand("import", "/flow import", "Paste a flow definition (YAML or JSON)", max_args=0)
async def import_flow(ctx: CommandContext) -> None:
    state = editor_cards.EditorState(channel_id=ctx.channel_id)
    view = editor_cards.editor_modal(
        state,
        "",
        title="Import a flow",
        intro="Paste a flow definition in YAML or JSON (`/flow export` writes one).",
        submit="Import",
    )
    await ctx.deps.client.views_open(trigger_id=ctx.trigger_id, view=view)


@subcommand("edit", "/flow edit <flow>", "Edit a flow's definition")
@catalog_errors
async def edit_flow(ctx: CommandContext) -> None:
    flow, _ = await catalog_of(ctx.deps).authorize(
        ctx.team_id, ctx.user_id, flow_ref(ctx), Action.EDIT
    )
    view = _edit_view(flow, ctx.channel_id)
    if view is None:
        limit = editor_cards.EDITOR_MAX_CHARS
        await ctx.reply(**error_message(TOO_LONG_TO_EDIT.format(limit=limit), None))
        return
    await ctx.deps.client.views_open(trigger_id=ctx.trigger_id, view=view)


@subcommand("export", "/flow export <flow>", "Show a flow's definition as YAML")
@catalog_errors
async def export_flow(ctx: CommandContext) -> None:
    flow = await catalog_of(ctx.deps).export(ctx.team_id, ctx.user_id, flow_ref(ctx))
    messages = flow_cards.export_messages(flow, dump_yaml(flow.definition))
    if messages is None:
        await ctx.reply(
            **error_message(
                "This flow is too long to show in Slack. Export it with "
                f"`python -m bot flows export {flow.id} --team {ctx.team_id}`.",
                None,
            )
        )
        return
    for message in messages:
        await ctx.reply(**message)


@subcommand("show", "/flow show <flow>", "Show a flow: trigger, inputs, steps, owners")
@catalog_errors
async def show_flow(ctx: CommandContext) -> None:
    flow, _ = await catalog_of(ctx.deps).authorize(
        ctx.team_id, ctx.user_id, flow_ref(ctx), Action.VIEW
    )
    await ctx.reply(**flow_cards.flow_card(flow, next_run(ctx.deps, flow)))


def next_run(deps: HandlerDeps, flow: FlowRecord) -> datetime | None:
    trigger = flow.definition.trigger
    if isinstance(trigger, ScheduleTrigger) and flow.enabled:
        return trigger.next_fire_time(deps.clock.now())
    return None


@subcommand("list", "/flow list", "Flows you own and flows shared with you", max_args=0)
async def list_flows(ctx: CommandContext) -> None:
    listed = await catalog_of(ctx.deps).list_for(ctx.team_id, ctx.user_id)
    owned = [item.flow for item in listed if item.access.is_owner]
    shared = [item.flow for item in listed if not item.access.is_owner]
    await ctx.reply(**flow_cards.flow_list(owned, shared))


async def _toggle(ctx: CommandContext, enabled: bool) -> None:
    flow = await catalog_of(ctx.deps).set_enabled(ctx.team_id, ctx.user_id, flow_ref(ctx), enabled)
    await ctx.reply(**flow_cards.toggled(flow))
    await _refresh_home(ctx.deps, ctx.team_id, ctx.user_id)


@subcommand("on", "/flow on <flow>", "Turn a flow on")
@catalog_errors
async def turn_on(ctx: CommandContext) -> None:
    await _toggle(ctx, True)


@subcommand("off", "/flow off <flow>", "Turn a flow off (it stops running)")
@catalog_errors
async def turn_off(ctx: CommandContext) -> None:
    await _toggle(ctx, False)


@subcommand("delete", "/flow delete <flow>", "Delete a flow (asks to confirm)")
@catalog_errors
async def delete_flow(ctx: CommandContext) -> None:
    flow, _ = await catalog_of(ctx.deps).authorize(
        ctx.team_id, ctx.user_id, flow_ref(ctx), Action.DELETE
    )
    await ctx.reply(**flow_cards.delete_confirm(flow))


# ---------------------------------------------------------------------------- saving


def _field_error(message: str) -> dict[str, Any]:
    return {
        "response_action": "errors",
        "errors": {
            editor_cards.EDITOR_BLOCK: editor_cards.format_field_errors(message.splitlines())
        },
    }


async def _save(
    deps: HandlerDeps, team_id: str, user_id: str, state: editor_cards.EditorState, text: str
) -> tuple[dict[str, Any], SaveResult | None]:
    """What to answer the submission with, and what was saved (None: nothing)."""
    if not text.strip():
        return _field_error("Paste a flow definition in YAML or JSON."), None
    try:
        definition = parse_definition(text)
    except DefinitionError as exc:
        return _field_error("\n".join(str(error) for error in exc.errors)), None
    catalog = catalog_of(deps)
    try:
        if state.flow_id:
            result = await catalog.update_definition(
                team_id, user_id, state.flow_id, definition, state.version
            )
        else:
            result = await catalog.create(team_id, user_id, definition)
    except FlowNotFound:
        return _field_error(
            "This flow was deleted while you were editing; nothing was saved."
        ), None
    except CatalogError as exc:
        return _field_error(str(exc)), None
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
    try:
        answer, result = await _save(deps, team_id, user_id, state, str(field.get("value") or ""))
    except Exception:
        log.exception("saving a flow from the editor failed")
        answer, result = _field_error("Something went wrong; nothing was saved. Try again."), None
    await ack(**answer)
    if result is None:
        return
    try:
        await _confirm_saved(deps, user_id, state.channel_id, result)
    except SlackApiError:
        log.exception("confirming the save of %s failed", result.flow.id)
    await _refresh_home(deps, team_id, user_id)


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
        team_id, user_id = _team(body), _user(body)
        flow_id = str((body.get("actions") or [{}])[0].get("value", ""))
        try:
            # The click re-checks: access may have changed since the question was asked.
            flow = await catalog_of(deps).delete(team_id, user_id, flow_id)
        except FlowNotFound:
            # A second click (or a click on an old question): the flow is gone already.
            # The message keeps what the first click made of it; this one is told apart.
            await respond(
                replace_original=False,
                response_type="ephemeral",
                **error_message(ALREADY_DELETED, None),
            )
            return
        except CatalogError as exc:
            await respond(replace_original=True, **error_message(str(exc), None))
            return
        await respond(replace_original=True, **flow_cards.deleted(flow.name))
        await _refresh_home(deps, team_id, user_id)

    @app.action(flow_cards.DELETE_CANCEL_ACTION)
    async def delete_cancelled(ack: AsyncAck, body: Body, respond: AsyncRespond) -> None:
        await ack()
        flow_id = str((body.get("actions") or [{}])[0].get("value", ""))
        try:
            name = (await catalog_of(deps).find(_team(body), flow_id)).name
        except CatalogError:
            # Deleted already (a late click): the question keeps saying so.
            await respond(
                replace_original=False,
                response_type="ephemeral",
                **error_message(ALREADY_DELETED, None),
            )
            return
        await respond(replace_original=True, **flow_cards.delete_cancelled(name))

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


async def _home_menu_view(
    deps: HandlerDeps, team_id: str, user_id: str, verb: str, flow_id: str
) -> dict[str, Any] | None:
    catalog = catalog_of(deps)
    try:
        if verb == "edit":
            flow, _ = await catalog.authorize(team_id, user_id, flow_id, Action.EDIT)
            view = _edit_view(flow, None)
            if view is None:
                text = TOO_LONG_TO_EDIT.format(limit=editor_cards.EDITOR_MAX_CHARS)
                return editor_cards.message_modal("Edit flow", [section(text)])
            return view
        if verb == "show":
            flow, _ = await catalog.authorize(team_id, user_id, flow_id, Action.VIEW)
            card = flow_cards.flow_card(flow, next_run(deps, flow))
            return editor_cards.message_modal("Flow", card["blocks"])
    except CatalogError as exc:
        return editor_cards.message_modal("Flow", [section(f":warning: {exc}")])
    return None
