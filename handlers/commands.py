"""The `/flow` slash command: tokenizing, the subcommand table and dispatch."""

from __future__ import annotations

import logging
import re
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond

from cards import common as common_cards
from cards import help as help_cards
from handlers.deps import HandlerDeps

log = logging.getLogger(__name__)


class UsageError(Exception):
    """A command was malformed; the message is shown with the subcommand's usage line."""


@dataclass
class CommandContext:
    team_id: str
    user_id: str
    channel_id: str
    trigger_id: str
    response_url: str
    subcommand: str
    args: list[str]
    raw_text: str
    respond: AsyncRespond
    deps: HandlerDeps

    async def reply(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """An ephemeral answer to the person who typed the command."""
        await self.respond(text=text, blocks=blocks, response_type="ephemeral")

    async def error(self, message: str) -> None:
        spec = SUBCOMMANDS.get(self.subcommand)
        usage = spec.usage if spec else None
        await self.reply(**common_cards.error_message(message, usage))


CommandHandler = Callable[[CommandContext], Awaitable[None]]


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    summary: str
    handler: CommandHandler
    aliases: tuple[str, ...] = ()
    # Opens a modal: the handler must call views.open before the trigger id expires.
    opens_modal: bool = False


SUBCOMMANDS: dict[str, Subcommand] = {}
_ORDER: list[str] = []


def subcommand(
    name: str, usage: str, summary: str, aliases: tuple[str, ...] = ()
) -> Callable[[CommandHandler], CommandHandler]:
    def decorate(handler: CommandHandler) -> CommandHandler:
        spec = Subcommand(name, usage, summary, handler, aliases)
        for key in (name, *aliases):
            SUBCOMMANDS[key] = spec
        _ORDER.append(name)
        return handler

    return decorate


def listed_subcommands() -> list[Subcommand]:
    return [SUBCOMMANDS[name] for name in _ORDER]


_TOKEN = re.compile(
    r'"(?P<dq>[^"]*)"|“(?P<sq>[^”]*)”'  # "quoted" or “smart quoted”
    r"|(?P<kq>[^\s=\"“]+=)(?:\"(?P<kv>[^\"]*)\"|“(?P<ks>[^”]*)”)"  # key="quoted value"
    r"|(?P<bare>\S+)"
)


def tokenize(text: str) -> list[str]:
    """Split command text on spaces; double quotes (straight or smart) group words.

    `reason="team lunch"` stays one token, `reason=team lunch` without the quotes is two.
    An unbalanced quote is a UsageError.
    """
    tokens: list[str] = []
    for match in _TOKEN.finditer(text.strip()):
        if match["dq"] is not None or match["sq"] is not None:
            tokens.append(match["dq"] if match["dq"] is not None else match["sq"])
        elif match["kq"] is not None:
            value = match["kv"] if match["kv"] is not None else match["ks"]
            tokens.append(match["kq"] + (value or ""))
        else:
            bare = match["bare"]
            if bare.count('"') % 2 == 1 or "“" in bare or "”" in bare:
                raise UsageError("a quote is not closed")
            tokens.append(bare)
    return tokens


async def _dispatch(
    ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, deps: HandlerDeps
) -> None:
    text = (command.get("text") or "").strip()
    try:
        tokens = tokenize(text)
    except UsageError as exc:
        await ack(**common_cards.error_message(str(exc), "/flow help"))
        return
    name = tokens[0].lower() if tokens else "help"
    spec = SUBCOMMANDS.get(name)
    if spec is None:
        await ack(
            **common_cards.error_message(
                f"Unknown subcommand `{tokens[0]}`.", help_cards.usage_line()
            )
        )
        return
    if spec.name == "help":
        await ack(**help_cards.help_message([(s.usage, s.summary) for s in listed_subcommands()]))
        return
    # Acknowledge at once; the answer follows through response_url or a modal.
    await ack()
    ctx = CommandContext(
        team_id=command.get("team_id", ""),
        user_id=command.get("user_id", ""),
        channel_id=command.get("channel_id", ""),
        trigger_id=command.get("trigger_id", ""),
        response_url=command.get("response_url", ""),
        subcommand=spec.name,
        args=tokens[1:],
        raw_text=text,
        respond=respond,
        deps=deps,
    )
    try:
        await spec.handler(ctx)
    except UsageError as exc:
        await ctx.error(str(exc))
    except Exception:
        log.exception("/flow %s failed", spec.name)
        await ctx.reply(
            **common_cards.error_message("Something went wrong; nothing was changed.", None)
        )


def register(app: AsyncApp, deps: HandlerDeps) -> None:
    @app.command("/flow")
    async def flow_command(ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond) -> None:
        await _dispatch(ack, command, respond, deps)


@subcommand("help", "/flow help", "Show this help")
async def _help(ctx: CommandContext) -> None:  # answered in the acknowledgement
    await ctx.reply(**help_cards.help_message([(s.usage, s.summary) for s in listed_subcommands()]))
