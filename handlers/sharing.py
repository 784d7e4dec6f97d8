"""Sharing in Slack: `/flow share|unshare|users|audit|link|buttons|admin`, the buttons
that go with them, and `SlackSharingNotifier` (the DMs and posts that tell people).

Who hears about a share: a user gets a DM; every member of a user group gets a DM; a
channel gets one post, whose **Add to my buttons** works for each member who clicks it.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from cards import common as common_cards
from cards import home as home_cards
from cards import sharing as cards
from cards.common import Message, escape
from flows.permissions import Action, can
from flows.ports import Messenger
from flows.records import FlowRecord, MessageRef, Role
from flows.sharing import AccessRequest, SharingError, SharingService, UnknownFlow, mention
from handlers.commands import CommandContext, UsageError, subcommand
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)

# What a button of a flow that no longer exists (or is no longer shared) answers.
GONE = "This flow no longer exists, or it is no longer shared with you."

_USER = re.compile(r"^<@([UW][A-Z0-9]+)(?:\|[^>]*)?>$")
_GROUP = re.compile(r"^<!subteam\^(S[A-Z0-9]+)(?:\|[^>]*)?>$")
_CHANNEL = re.compile(r"^<#([CG][A-Z0-9]+)(?:\|[^>]*)?>$")
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


def parse_principal(token: str) -> str | None:
    """`<@U…|name>` → U…, `<!subteam^S…|handle>` → S…, `<#C…|name>` → C…; else None."""
    for pattern in (_USER, _GROUP, _CHANNEL):
        match = pattern.match(token.strip())
        if match:
            return match.group(1)
    return None


def looks_like_mention(token: str) -> bool:
    return token.startswith(("<@", "<!subteam", "<#", "@", "#"))


def split_flow_and_principals(
    args: list[str], *, allow_role: bool
) -> tuple[str, list[str], Role | None]:
    """`<flow words…> <principal…> [as owner|runner]`: the flow name is every token before
    the first mention (so quotes are optional)."""
    role: Role | None = None
    args = list(args)
    if allow_role and len(args) >= 2 and args[-2].lower() == "as":
        wanted = args[-1].lower()
        if wanted not in _ROLES:
            raise UsageError(f"`{escape(args[-1])}` is not a role: say `as owner` or `as runner`.")
        role = _ROLES[wanted]
        args = args[:-2]
    first = next((i for i, token in enumerate(args) if looks_like_mention(token)), None)
    if first is None and len(args) >= 2:
        raise UsageError(
            f"`{escape(args[-1])}` is not a person, user group or channel: pick them with @ or # "
            "so Slack fills them in."
        )
    if first is None or first == 0:
        raise UsageError("Name the flow, then the people, groups or channels.")
    name = " ".join(args[:first])
    principals: list[str] = []
    # People often separate them with commas: `<@U1>, <@U2>` or `<@U1>,<@U2>`.
    pieces = [piece for token in args[first:] for piece in token.split(",") if piece]
    for piece in pieces:
        principal = parse_principal(piece)
        if principal is None:
            raise UsageError(
                f"`{escape(piece)}` is not a person, user group or channel: pick them with @ or # "
                "so Slack fills them in."
            )
        principals.append(principal)
    return name, principals, role


def _service(deps: HandlerDeps) -> SharingService:
    return deps.sharing


def _flow_name(args: list[str]) -> str:
    name = " ".join(args).strip()
    if not name:
        raise UsageError("Which flow?")
    return name


async def _refuse(ctx: CommandContext, exc: SharingError) -> None:
    """An ephemeral refusal; an unknown flow also gets the usage line."""
    if isinstance(exc, UnknownFlow):
        await ctx.error(str(exc))
    else:
        await ctx.reply(**common_cards.error_message(str(exc), None))


# ------------------------------------------------------------------ subcommands


@subcommand(
    "share",
    "/flow share <flow> <@user|@group|#channel …> [as owner|runner]",
    "Share a flow: run-only (buttons) or as co-owners",
)
async def _share(ctx: CommandContext) -> None:
    name, principals, role = split_flow_and_principals(ctx.args, allow_role=True)
    try:
        result = await _service(ctx.deps).share(ctx.team_id, ctx.user_id, name, principals, role)
    except SharingError as exc:
        await _refuse(ctx, exc)
        return
    await ctx.reply(**cards.share_result(result))


@subcommand(
    "unshare", "/flow unshare <flow> <@user|@group|#channel …>", "Stop sharing a flow with someone"
)
async def _unshare(ctx: CommandContext) -> None:
    name, principals, _ = split_flow_and_principals(ctx.args, allow_role=False)
    try:
        result = await _service(ctx.deps).unshare(ctx.team_id, ctx.user_id, name, principals)
    except SharingError as exc:
        await _refuse(ctx, exc)
        return
    await ctx.reply(**cards.unshare_result(result))


@subcommand("users", "/flow users <flow>", "Who a flow is shared with, and with which role")
async def _users(ctx: CommandContext) -> None:
    try:
        view = await _service(ctx.deps).users(ctx.team_id, ctx.user_id, _flow_name(ctx.args))
    except SharingError as exc:
        await _refuse(ctx, exc)
        return
    await ctx.reply(**cards.users_list(view))


@subcommand("audit", "/flow audit <flow>", "The sharing history of a flow (owners)")
async def _audit(ctx: CommandContext) -> None:
    try:
        flow, entries = await _service(ctx.deps).audit(
            ctx.team_id, ctx.user_id, _flow_name(ctx.args)
        )
    except SharingError as exc:
        await _refuse(ctx, exc)
        return
    await ctx.reply(**cards.audit_list(flow, entries))


@subcommand("link", "/flow link <flow> [#channel]", "Post a Run button for a flow in a channel")
async def _link(ctx: CommandContext) -> None:
    args = list(ctx.args)
    channel = ctx.channel_id
    if args and args[-1].startswith(("<#", "#")):
        parsed = parse_principal(args[-1])
        if parsed is None:
            raise UsageError(
                f"`{escape(args[-1])}` is not a channel: pick it with # so Slack fills it in."
            )
        channel = parsed
        args = args[:-1]
    service = _service(ctx.deps)
    try:
        flow = await service.authorize_link(ctx.team_id, ctx.user_id, _flow_name(args))
    except SharingError as exc:
        await _refuse(ctx, exc)
        return
    card = cards.link_message(flow, ctx.user_id)
    try:
        ref = await ctx.deps.messenger.post_message(channel, card["text"], card["blocks"])
    except Exception:
        log.warning("posting a link to %s in %s failed", flow.id, channel, exc_info=True)
        await ctx.reply(
            **common_cards.error_message(
                f"I couldn't post in <#{channel}>: invite me there (`/invite @Flowbot`).", None
            )
        )
        return
    await ctx.reply(**cards.link_posted(flow, ref.channel))


@subcommand("buttons", "/flow buttons", "My buttons: the buttons shared with you", max_args=0)
async def _buttons(ctx: CommandContext) -> None:
    buttons = await _service(ctx.deps).my_buttons(ctx.team_id, ctx.user_id)
    await ctx.reply(**cards.my_buttons_message(buttons))


@subcommand(
    "admin",
    "/flow admin creators [everyone | <@user|@group|#channel …>]",
    "Workspace admins: choose who may create flows",
)
async def _admin(ctx: CommandContext) -> None:
    if not ctx.args or ctx.args[0].lower() != "creators":
        raise UsageError("The only admin setting is `creators`.")
    service = _service(ctx.deps)
    rest = ctx.args[1:]
    if not rest:
        await ctx.reply(**cards.policy_message(await service.policy(ctx.team_id)))
        return
    creators: list[str] | None
    if len(rest) == 1 and rest[0].lower() in ("everyone", "all", "anyone"):
        creators = None
    else:
        creators = []
        for token in rest:
            principal = parse_principal(token)
            if principal is None:
                raise UsageError(
                    f"`{escape(token)}` is not a person, user group or channel (or say `everyone`)."
                )
            creators.append(principal)
    try:
        policy = await service.set_creators(ctx.team_id, ctx.user_id, creators)
    except SharingError as exc:
        await _refuse(ctx, exc)
        return
    await ctx.reply(**cards.policy_message(policy))


# ------------------------------------------------------------------ the notifier


class SlackSharingNotifier:
    """Implements `flows.sharing.SharingNotifier` with `cards.sharing`."""

    def __init__(self, messenger: Messenger) -> None:
        self.messenger = messenger

    async def button_shared(
        self, recipient: str, flow: FlowRecord, actor: str, role: Role, via: str | None
    ) -> None:
        card = cards.shared_with_you(flow, actor, role, via)
        if recipient.startswith(("C", "G")):
            await self.messenger.post_message(recipient, card["text"], card["blocks"])
        else:
            await self.messenger.send_dm(recipient, card["text"], card["blocks"])

    async def access_requested(
        self, owner: str, request: AccessRequest, flow: FlowRecord
    ) -> MessageRef | None:
        card = cards.access_request(request, flow)
        return await self.messenger.send_dm(owner, card["text"], card["blocks"])

    async def access_decided(self, request: AccessRequest, flow: FlowRecord) -> None:
        card = cards.access_answer(request, flow)
        await self.messenger.send_dm(request.requester, card["text"], card["blocks"])

    async def request_closed(
        self, ref: MessageRef, request: AccessRequest, flow: FlowRecord
    ) -> None:
        card = cards.access_request_closed(request, flow)
        await self.messenger.update_message(ref, card["text"], card["blocks"])


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


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    from handlers import home, run_commands

    home.home_sections[home_cards.MY_BUTTONS_BLOCK] = my_buttons_section

    async def refresh(team_id: str, user: str) -> None:
        try:
            await home.publish_home(deps, team_id, user)
        except Exception:
            log.exception("refreshing the App Home of %s failed", user)

    async def guarded(
        body: Mapping[str, Any], respond: AsyncRespond, work: Callable[[], Awaitable[None]]
    ) -> None:
        try:
            await work()
        except SharingError as exc:
            # A button names its flow by id: an unknown one was deleted (or is hidden).
            why = GONE if isinstance(exc, UnknownFlow) else str(exc)
            await _say(respond, body, common_cards.error_message(why, None), False)
            if _from_home(body) and not body.get("response_url"):
                await deps.messenger.send_dm(_user(body), why)
        except Exception:
            log.exception("sharing action failed")
            await _say(
                respond,
                body,
                common_cards.error_message("Something went wrong; nothing was changed.", None),
                False,
            )

    @app.action(cards.REMOVE_SHARE_ACTION)
    async def remove_share(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        async def work() -> None:
            flow_id, principal = cards.parse_remove_value(_value(body))
            result, view = await _service(deps).remove_share(
                _team(body), _user(body), flow_id, principal
            )
            if result.refused and not result.removed:
                _, why = result.refused[0]
                note = common_cards.error_message(f"{mention(principal)} {why}.", None)
                await _say(respond, body, note, False)
            await _say(respond, body, cards.users_list(view), True)

        await guarded(body, respond, work)

    @app.action(cards.ADD_BUTTON_ACTION)
    async def add_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        async def work() -> None:
            flow = await _service(deps).add_button(_team(body), _user(body), _value(body))
            if _from_home(body):
                await refresh(_team(body), _user(body))
            else:
                await _say(respond, body, cards.button_added(flow), False)

        await guarded(body, respond, work)

    @app.action(cards.REMOVE_BUTTON_ACTION)
    async def remove_button(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        async def work() -> None:
            flow = await _service(deps).remove_button(_team(body), _user(body), _value(body))
            if _from_home(body):
                await refresh(_team(body), _user(body))
            else:
                await _say(respond, body, cards.button_removed(flow), False)

        await guarded(body, respond, work)

    @app.action(cards.LINK_RUN_ACTION)
    async def link_run(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        async def work() -> None:
            service = _service(deps)
            flow = await service.find(_team(body), _value(body))
            if await can(Action.RUN, flow, _user(body), deps.directory):
                # The runs area's App Home button does the rest (inputs modal, run, result).
                await run_commands.run_from_button(deps, body)
                return
            await _say(respond, body, cards.request_offer(flow), False)

        await guarded(body, respond, work)

    @app.action(cards.REQUEST_ACCESS_ACTION)
    async def request_access(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()

        async def work() -> None:
            result = await _service(deps).request_access(_team(body), _user(body), _value(body))
            if result.already_allowed:
                card = cards.already_allowed(result.flow)
            else:
                card = cards.request_sent(result.flow, result.owners_told, result.already_pending)
            await _say(respond, body, card, True)

        await guarded(body, respond, work)

    async def decide(body: dict[str, Any], respond: AsyncRespond, approve: bool) -> None:
        async def work() -> None:
            result = await _service(deps).decide(_team(body), _user(body), _value(body), approve)
            if result.already_decided:
                await _say(respond, body, cards.already_decided(result.request), False)
            # On a decision every owner's message is updated by the notifier.

        await guarded(body, respond, work)

    @app.action(cards.APPROVE_ACTION)
    async def approve(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await decide(body, respond, True)

    @app.action(cards.DENY_ACTION)
    async def deny(ack: AsyncAck, body: dict[str, Any], respond: AsyncRespond) -> None:
        await ack()
        await decide(body, respond, False)
