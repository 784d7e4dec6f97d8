"""Sharing in Slack: `/flow share|unshare|users|audit|link|buttons|admin` and the buttons
that go with them.

Each listener takes team and user, calls one `SharingService` use case (which decides
through `flows.permissions`) and answers with `cards.sharing`. A refusal is a
`FlowbotError`: the slash router words those of commands; the buttons here word their own
(a flow gone from under a button reads differently). Who hears about a share is the
notifier's business (`adapters.sharing_notifier`).
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from cards import common as common_cards
from cards import sharing as cards
from cards.common import Message, escape
from cards.errors import describe
from flows.errors import FlowbotError, FlowNotFound
from flows.records import Role
from flows.slack_ids import looks_like_mention, parse_channel, parse_mention
from handlers.commands import CommandContext, Subcommand, UsageError
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)

_ROLES: dict[str, Role] = {
    "owner": "owner",
    "owners": "owner",
    "co-owner": "owner",
    "coowner": "owner",
    "runner": "runner",
    "runners": "runner",
    "run-only": "runner",
    "runonly": "runner",
}
_EVERYONE = ("everyone", "all", "anyone")


# ------------------------------------------------------------------ reading the words


def _not_a_principal(token: str) -> UsageError:
    return UsageError(
        f"`{escape(token)}` is not a person, user group or channel: pick them with @ or # "
        "so Slack fills them in."
    )


def _split_role(args: list[str]) -> tuple[list[str], Role | None]:
    """A trailing `as owner|runner`, if any."""
    if len(args) < 2 or args[-2].lower() != "as":
        return args, None
    wanted = args[-1].lower()
    if wanted not in _ROLES:
        raise UsageError(f"`{escape(args[-1])}` is not a role: say `as owner` or `as runner`.")
    return args[:-2], _ROLES[wanted]


def _principals(tokens: Sequence[str]) -> list[str]:
    """Escaped mentions; people often separate them with commas: `<@U1>, <@U2>`."""
    principals: list[str] = []
    for piece in (piece for token in tokens for piece in token.split(",") if piece):
        principal = parse_mention(piece)
        if principal is None:
            raise _not_a_principal(piece)
        principals.append(principal)
    return principals


def split_flow_and_principals(
    args: list[str], *, allow_role: bool
) -> tuple[str, list[str], Role | None]:
    """`<flow words…> <principal…> [as owner|runner]`: the flow name is every token before
    the first mention (so quotes are optional)."""
    args, role = _split_role(list(args)) if allow_role else (list(args), None)
    first = next((i for i, token in enumerate(args) if looks_like_mention(token)), None)
    if first is None and len(args) >= 2:
        raise _not_a_principal(args[-1])
    if first is None or first == 0:
        raise UsageError("Name the flow, then the people, groups or channels.")
    return " ".join(args[:first]), _principals(args[first:]), role


def _flow_name(args: Sequence[str]) -> str:
    name = " ".join(args).strip()
    if not name:
        raise UsageError("Which flow?")
    return name


def _link_args(args: list[str], here: str) -> tuple[str, str]:
    """`<flow> [#channel]`: the flow's name and where to post (here by default)."""
    if not args or not args[-1].startswith(("<#", "#")):
        return _flow_name(args), here
    channel = parse_channel(args[-1])
    if channel is None:
        raise UsageError(
            f"`{escape(args[-1])}` is not a channel: pick it with # so Slack fills it in."
        )
    return _flow_name(args[:-1]), channel


def _creators(words: list[str]) -> list[str] | None:
    """`everyone` (None) or the people, groups and channels who may create flows."""
    if len(words) == 1 and words[0].lower() in _EVERYONE:
        return None
    creators: list[str] = []
    for token in words:
        principal = parse_mention(token)
        if principal is None:
            raise UsageError(
                f"`{escape(token)}` is not a person, user group or channel (or say `everyone`)."
            )
        creators.append(principal)
    return creators


# ------------------------------------------------------------------ subcommands


async def share_command(ctx: CommandContext) -> None:
    name, principals, role = split_flow_and_principals(ctx.args, allow_role=True)
    result = await ctx.deps.sharing.share(ctx.team_id, ctx.user_id, name, principals, role)
    await ctx.reply(**cards.share_result(result))


async def unshare_command(ctx: CommandContext) -> None:
    name, principals, _ = split_flow_and_principals(ctx.args, allow_role=False)
    result = await ctx.deps.sharing.unshare(ctx.team_id, ctx.user_id, name, principals)
    await ctx.reply(**cards.unshare_result(result))


async def users_command(ctx: CommandContext) -> None:
    view = await ctx.deps.sharing.users(ctx.team_id, ctx.user_id, _flow_name(ctx.args))
    await ctx.reply(**cards.users_list(view))


async def audit_command(ctx: CommandContext) -> None:
    flow, entries = await ctx.deps.sharing.audit(ctx.team_id, ctx.user_id, _flow_name(ctx.args))
    await ctx.reply(**cards.audit_list(flow, entries))


async def link_command(ctx: CommandContext) -> None:
    name, channel = _link_args(list(ctx.args), ctx.channel_id)
    posted = await ctx.deps.sharing.post_link(ctx.team_id, ctx.user_id, name, channel)
    await ctx.reply(**cards.link_posted(posted.flow, posted.channel))


async def buttons_command(ctx: CommandContext) -> None:
    buttons = await ctx.deps.sharing.my_buttons(ctx.team_id, ctx.user_id)
    await ctx.reply(**cards.my_buttons_message(buttons))


async def admin_command(ctx: CommandContext) -> None:
    if not ctx.args or ctx.args[0].lower() != "creators":
        raise UsageError("The only admin setting is `creators`.")
    service = ctx.deps.sharing
    if len(ctx.args) == 1:
        await ctx.reply(**cards.policy_message(await service.policy(ctx.team_id)))
        return
    creators = _creators(ctx.args[1:])
    policy = await service.set_creators(ctx.team_id, ctx.user_id, creators)
    await ctx.reply(**cards.policy_message(policy))


SUBCOMMANDS: list[Subcommand] = [
    Subcommand(
        "share",
        "/flow share <flow> <@user|@group|#channel …> [as owner|runner]",
        "Share a flow: run-only (buttons) or as co-owners",
        share_command,
    ),
    Subcommand(
        "unshare",
        "/flow unshare <flow> <@user|@group|#channel …>",
        "Stop sharing a flow with someone",
        unshare_command,
    ),
    Subcommand(
        "users",
        "/flow users <flow>",
        "Who a flow is shared with, and with which role",
        users_command,
    ),
    Subcommand(
        "audit", "/flow audit <flow>", "The sharing history of a flow (owners)", audit_command
    ),
    Subcommand(
        "link",
        "/flow link <flow> [#channel]",
        "Post a Run button for a flow in a channel",
        link_command,
    ),
    Subcommand(
        "buttons",
        "/flow buttons",
        "My buttons: the buttons shared with you",
        buttons_command,
        max_args=0,
    ),
    Subcommand(
        "admin",
        "/flow admin creators [everyone | <@user|@group|#channel …>]",
        "Workspace admins: choose who may create flows",
        admin_command,
    ),
]


# ------------------------------------------------------------------ App Home


async def my_buttons_section(deps: HandlerDeps, team_id: str, user: str) -> list[dict[str, Any]]:
    """For the App Home: the blocks under its "My buttons" header."""
    buttons = await deps.sharing.my_buttons(team_id, user)
    return cards.my_buttons_blocks(buttons, header=False)


# ------------------------------------------------------------------ interactivity


def _team(body: Mapping[str, Any]) -> str:
    return str((body.get("team") or {}).get("id") or (body.get("user") or {}).get("team_id") or "")


def _user(body: Mapping[str, Any]) -> str:
    return str((body.get("user") or {}).get("id") or "")


def _value(body: Mapping[str, Any]) -> str:
    actions = body.get("actions") or [{}]
    return str(actions[0].get("value") or "")


def _from_home(body: Mapping[str, Any]) -> bool:
    return (body.get("view") or {}).get("type") == "home" or (
        (body.get("container") or {}).get("type") == "view"
    )


async def _say(
    respond: AsyncRespond, body: Mapping[str, Any], card: Message, replace: bool
) -> None:
    """Answer in place of the clicked message (replace) or as an ephemeral next to it."""
    if not body.get("response_url"):
        return
    await respond(
        text=card["text"],
        blocks=card["blocks"],
        response_type="ephemeral",
        replace_original=replace,
    )


Click = Callable[[dict[str, Any], AsyncRespond], Awaitable[None]]


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    from handlers import home, run_commands

    service = deps.sharing

    async def refresh(team_id: str, user: str) -> None:
        """Best effort, after the change was saved: the tab catches up when next opened."""
        try:
            await home.publish_home(deps, team_id, user)
        except Exception:
            log.exception("refreshing the App Home of %s failed", user)

    async def refused(body: dict[str, Any], respond: AsyncRespond, error: FlowbotError) -> None:
        # A button names its flow by id: an unknown one was deleted (or is hidden).
        why = cards.GONE if isinstance(error, FlowNotFound) else describe(error)
        await _say(respond, body, common_cards.error_message(why, None), False)
        if _from_home(body) and not body.get("response_url"):
            await deps.messenger.send_dm(_user(body), why)

    def on_click(action_id: str) -> Callable[[Click], Click]:
        """A button: acknowledged at once; a refusal answers the person who clicked."""

        def listen(click: Click) -> Click:
            @app.action(action_id)
            async def clicked(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
                await ack()
                try:
                    await click(body, respond)
                except FlowbotError as error:
                    await refused(body, respond, error)

            return click

        return listen

    @on_click(cards.REMOVE_SHARE_ACTION)
    async def remove_share(body: dict[str, Any], respond: AsyncRespond) -> None:
        flow_id, principal = cards.parse_remove_value(_value(body))
        result, view = await service.remove_share(_team(body), _user(body), flow_id, principal)
        if result.refused and not result.removed:
            await _say(respond, body, cards.principal_refused(*result.refused[0]), False)
        await _say(respond, body, cards.users_list(view), True)

    @on_click(cards.ADD_BUTTON_ACTION)
    async def add_button(body: dict[str, Any], respond: AsyncRespond) -> None:
        flow = await service.add_button(_team(body), _user(body), _value(body))
        if _from_home(body):
            await refresh(_team(body), _user(body))
        else:
            await _say(respond, body, cards.button_added(flow), False)

    @on_click(cards.REMOVE_BUTTON_ACTION)
    async def remove_button(body: dict[str, Any], respond: AsyncRespond) -> None:
        flow = await service.remove_button(_team(body), _user(body), _value(body))
        if _from_home(body):
            await refresh(_team(body), _user(body))
        else:
            await _say(respond, body, cards.button_removed(flow), False)

    @on_click(cards.LINK_RUN_ACTION)
    async def link_run(body: dict[str, Any], respond: AsyncRespond) -> None:
        opened = await service.open_link(_team(body), _user(body), _value(body))
        if opened.may_run:
            # The runs area's App Home button does the rest (inputs modal, run, result).
            await run_commands.run_from_button(deps, body)
        else:
            await _say(respond, body, cards.request_offer(opened.flow), False)

    @on_click(cards.REQUEST_ACCESS_ACTION)
    async def request_access(body: dict[str, Any], respond: AsyncRespond) -> None:
        result = await service.request_access(_team(body), _user(body), _value(body))
        if result.already_allowed:
            card = cards.already_allowed(result.flow)
        else:
            card = cards.request_sent(result.flow, result.owners_told, result.already_pending)
        await _say(respond, body, card, True)

    async def decide(body: dict[str, Any], respond: AsyncRespond, approve: bool) -> None:
        result = await service.decide(_team(body), _user(body), _value(body), approve)
        if result.already_decided:
            await _say(respond, body, cards.already_decided(result.request), False)
        # On a decision every owner's message is updated by the notifier.

    @on_click(cards.APPROVE_ACTION)
    async def approve(body: dict[str, Any], respond: AsyncRespond) -> None:
        await decide(body, respond, True)

    @on_click(cards.DENY_ACTION)
    async def deny(body: dict[str, Any], respond: AsyncRespond) -> None:
        await decide(body, respond, False)
