"""The `/flow` slash command: tokenizing, and `SlashRouter`, built in `bot.app` from every
handler module's `SUBCOMMANDS` list, which checks the words and runs the subcommand."""

from __future__ import annotations

import asyncio
import json
import logging
import re
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

from slack_bolt.async_app import AsyncAck, AsyncApp, AsyncRespond
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from cards import common as common_cards
from cards import help as help_cards
from cards.common import escape
from cards.errors import describe
from flows.deliveries import DeliveryLog
from flows.errors import FlowbotError
from flows.ports import Clock
from handlers.deps import HandlerDeps
from handlers.errors import RepeatedDelivery
from handlers.middleware import RequestMiddleware

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
    router: SlashRouter

    async def reply(self, text: str, blocks: list[dict[str, Any]] | None = None) -> None:
        """An ephemeral answer to the person who typed the command."""
        await self.respond(text=text, blocks=blocks, response_type="ephemeral")

    async def error(self, message: str) -> None:
        """`message` (mrkdwn) with the usage line of the subcommand."""
        spec = self.router.get(self.subcommand)
        await self.reply(**common_cards.error_message(message, spec.usage if spec else None))


CommandHandler = Callable[[CommandContext], Awaitable[None]]


@dataclass(frozen=True)
class Subcommand:
    name: str
    usage: str
    summary: str
    handler: CommandHandler
    aliases: tuple[str, ...] = ()
    # At most this many words after the subcommand (None: the handler checks them).
    max_args: int | None = None


_TOKEN = re.compile(
    r'"(?P<dq>[^"]*)"|“(?P<sq>[^”]*)”'  # "quoted" or “smart quoted”
    r"|(?P<kq>[^\s=\"“]+=)(?:\"(?P<kv>[^\"]*)\"|“(?P<ks>[^”]*)”)"  # key="quoted value"
    r"|(?P<bare>\S+)"
)


def _unescape(token: str) -> str:
    """With `should_escape`, Slack sends typed `&`, `<`, `>` as entities: read them as typed."""
    return token.replace("&lt;", "<").replace("&gt;", ">").replace("&amp;", "&")


def tokenize(text: str) -> list[str]:
    """Split command text on spaces; double quotes (straight or smart) group words.

    `reason="team lunch"` stays one token, `reason=team lunch` without the quotes is two.
    An unbalanced quote is a UsageError. Slack's entities are read back as typed.
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
                raise UsageError("A quote is not closed.")
            tokens.append(bare)
    return [_unescape(token) for token in tokens]


class Deliveries:
    """Slack deliveries already taken in, by trigger id (else signature): a retried,
    duplicated or replayed request (the same payload again) must not do its work twice.

    Kept in this process for `ttl` seconds, and in `log` (the database, with a TTL) so a
    replay after a restart is recognised too. A command refused in its acknowledgement
    is checked after the refusal, so it leaves nothing behind."""

    def __init__(
        self,
        log: DeliveryLog | None = None,
        clock: Clock | None = None,
        ttl: float = 600.0,
        size: int = 20_000,
    ) -> None:
        self.log = log
        self.clock = clock
        self.ttl = ttl
        self.size = size
        self._seen: OrderedDict[str, float] = OrderedDict()

    def _first_here(self, key: str) -> bool:
        now = time.monotonic()
        while self._seen and (
            len(self._seen) >= self.size or now - next(iter(self._seen.values())) > self.ttl
        ):
            self._seen.popitem(last=False)
        if key in self._seen:
            return False
        self._seen[key] = now
        return True

    async def first_time(self, key: str, durable: bool = True) -> bool:
        """True the first time `key` is offered (an empty key always counts as new);
        `durable`: recorded in the log too, so a replay after a restart is recognised."""
        if not self.first_here(key):
            return False
        return await self.first_durably(key) if durable else True

    def first_here(self, key: str) -> bool:
        """`first_time` in this process only (no database round trip)."""
        return not key or self._first_here(key)

    async def first_durably(self, key: str) -> bool:
        """`first_time` in the log (across restarts), for a key `first_here` let through."""
        if not key or self.log is None:
            return True
        at = self.clock.now() if self.clock is not None else datetime.now(UTC)
        return await self.log.first_time(key, at)

    async def forget(self, key: str) -> None:
        """A delivery refused without changing anything leaves nothing behind."""
        self._seen.pop(key, None)
        if key and self.log is not None:
            await self.log.forget(key)


def delivery_key(kind: str, trigger_id: Any, signature: str | None) -> str:
    """What identifies a delivery: its trigger id, else its signature (unique per body
    and timestamp)."""
    if trigger_id:
        return f"{kind}:{trigger_id}"
    return f"{kind}:sig:{signature}" if signature else ""


# Subcommands whose replay would do their work again (start a run, post a message): their
# deliveries are remembered across restarts. The others read, set a state to a value
# (idempotent) or open a modal (a trigger id is valid 3 s, so a replay cannot), and leave
# nothing behind.
REPLAY_GUARDED = frozenset({"run", "link"})

# Interactions whose work must happen once per click or submission.
_DEDUPED_PAYLOADS = ("block_actions", "view_submission")
# … of which those whose listeners all call `ack()` before doing anything else: their
# delivery is recorded in the log right after the acknowledgement, before the listener
# goes on (Slack retries only unacknowledged requests; a replay after a restart is stopped
# there). View submissions are answered (errors, the next view) after their work, so they
# are recorded before their listener runs.
_RECORDED_AFTER_ACK = ("block_actions",)


class _RecordingAck(AsyncAck):
    """A listener's `ack`: acknowledges (the `ack` it wraps sets the response Bolt sends),
    then records the delivery, and stops the listener with `RepeatedDelivery` when it had
    been taken in already."""

    def __init__(self, inner: AsyncAck, record: Callable[[], Awaitable[bool]]) -> None:
        self._inner = inner
        self._record = record
        super().__init__()

    @property  # type: ignore[override]
    def response(self) -> BoltResponse | None:
        return self._inner.response

    @response.setter
    def response(self, value: BoltResponse | None) -> None:
        # Bolt clears the response of a listener that failed after its ack (the error
        # handler's answer is not sent then); the acknowledgement given stays the answer.
        if value is not None or self._inner.response is None:
            self._inner.response = value

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = await self._inner(*args, **kwargs)
        if not await self._record():
            raise RepeatedDelivery("a repeated delivery, found once acknowledged")
        return response

    async def reading_first(self) -> Confirm:
        """Acknowledges and starts recording the delivery, for a listener that reads
        before it writes: the returned `Confirm` waits for the record (`RepeatedDelivery`
        if it had been taken in already); the listener awaits it before any write or
        answer."""
        await self._inner()
        recording = asyncio.ensure_future(self._record())
        # Its failure reaches the listener through `confirm`, if the listener gets there.
        recording.add_done_callback(lambda task: task.cancelled() or task.exception())

        async def confirm() -> None:
            if not await asyncio.shield(recording):
                raise RepeatedDelivery("a repeated delivery, found once acknowledged")

        return confirm


# Awaited before a listener's first write or answer: raises `RepeatedDelivery` when the
# delivery had been taken in already (`ack_reading_first`).
Confirm = Callable[[], Awaitable[None]]


async def _confirmed() -> None:
    pass


async def ack_reading_first(ack: AsyncAck) -> Confirm:
    """`await ack()` for a click's listener that reads before it writes: its delivery is
    recorded while it reads; it awaits the `Confirm` returned before any write or answer.
    (A view submission's delivery is recorded before its listener runs: nothing to wait
    for then.)"""
    if isinstance(ack, _RecordingAck):
        return await ack.reading_first()
    await ack()
    return _confirmed


def _first_word(text: str) -> str:
    words = text.split(maxsplit=1)
    return words[0].strip('"“”').lower() if words else ""


def _unexpected(name: str, args: list[str], max_args: int) -> str:
    extra = escape(" ".join(args[max_args:]).replace("`", "'"))
    if max_args == 0:
        return f"`/flow {name}` takes no arguments (got `{extra}`)."
    return f"Unexpected words after the arguments of `/flow {name}`: `{extra}`."


HELP_USAGE = "/flow help [<subcommand>]"


class SlashRouter:
    """`/flow <subcommand> …`: finds the subcommand (by name or alias), checks its words,
    and runs its handler. Help lists the subcommands in the order they were given."""

    def __init__(self, subcommands: Sequence[Subcommand]) -> None:
        self.subcommands = list(subcommands)
        self._help: common_cards.Message | None = None
        self._help_json = ""  # the help card as the acknowledgement's body
        self._by_name: dict[str, Subcommand] = {}
        for spec in self.subcommands:
            for key in (spec.name, *spec.aliases):
                if key in self._by_name:
                    raise ValueError(f"two subcommands are called {key!r}")
                self._by_name[key] = spec

    def get(self, name: str) -> Subcommand | None:
        return self._by_name.get(name)

    def help_answer(self, args: list[str]) -> common_cards.Message:
        if not args:
            # The same card every time, answered in the acknowledgement: built once, and
            # never changed (Bolt's ack and respond() build their own payloads from it).
            if self._help is None:
                pairs = [(s.usage, s.summary) for s in self.subcommands]
                self._help = help_cards.help_message(pairs)
                self._help_json = json.dumps(self._help)
            return self._help
        spec = self.get(args[0].lower())
        if spec is None or len(args) > 1:
            what = escape(" ".join(args).replace("`", "'"))
            return common_cards.error_message(f"There is no subcommand `{what}`.", HELP_USAGE)
        return help_cards.subcommand_help(spec.usage, spec.summary)

    def read(self, text: str) -> common_cards.Message | tuple[Subcommand, list[str]]:
        """The subcommand `text` calls and its words, or why it is refused before any work
        (an answer for the acknowledgement)."""
        try:
            tokens = tokenize(text)
        except UsageError as exc:
            # The usage of the subcommand being typed, when it can be told.
            typed = self.get(_first_word(text))
            return common_cards.error_message(str(exc), typed.usage if typed else HELP_USAGE)
        spec = self.get(tokens[0].lower() if tokens else "help")
        if spec is None:
            what = escape(tokens[0].replace("`", "'"))
            return common_cards.error_message(
                f"Unknown subcommand `{what}`.", help_cards.usage_line()
            )
        args = tokens[1:]
        if spec.name == "help":
            return self.help_answer(args)
        if spec.max_args is not None and len(args) > spec.max_args:
            return common_cards.error_message(
                _unexpected(spec.name, args, spec.max_args), spec.usage
            )
        return spec, args

    async def dispatch(
        self,
        ack: AsyncAck,
        command: dict[str, Any],
        respond: AsyncRespond,
        deps: HandlerDeps,
        deliveries: Deliveries,
        signature: str | None = None,
    ) -> None:
        text = (command.get("text") or "").strip()
        called = self.read(text)
        if called is self._help:
            # The help card, serialized once: the acknowledgement's body as Bolt's ack()
            # would make it (JSON, so Bolt answers it as application/json).
            ack.response = BoltResponse(status=200, body=self._help_json)
            return
        if not isinstance(called, tuple):
            # Rejected in the acknowledgement: nothing is changed, nothing opened.
            await ack(**called)
            return
        spec, args = called
        # Acknowledge at once (a repeated delivery gets the same empty acknowledgement);
        # the answer follows through response_url or a modal.
        await ack()
        key = delivery_key("command", command.get("trigger_id"), signature)
        if not await deliveries.first_time(key, durable=spec.name in REPLAY_GUARDED):
            # A retry of a command already taken in: its answer comes from the first delivery.
            return
        ctx = CommandContext(
            team_id=command.get("team_id", ""),
            user_id=command.get("user_id", ""),
            channel_id=command.get("channel_id", ""),
            trigger_id=command.get("trigger_id", ""),
            response_url=command.get("response_url", ""),
            subcommand=spec.name,
            args=args,
            raw_text=text,
            respond=respond,
            deps=deps,
            router=self,
        )
        try:
            await spec.handler(ctx)
        except UsageError as exc:
            await deliveries.forget(key)
            await ctx.error(str(exc))
        except FlowbotError as exc:
            await deliveries.forget(key)
            # Unknown flows and names were mistyped: shown with the usage line (SPEC 9).
            usage = spec.usage if exc.typing_mistake else None
            await ctx.reply(**common_cards.error_message(describe(exc), usage))
        except Exception:
            await deliveries.forget(key)  # it failed and changed nothing: may be sent again
            raise
        # Anything else reaches the app's error handler (handlers.errors).

    def register(self, app: AsyncApp, deps: HandlerDeps) -> None:
        """The `/flow` command, and the middleware that drops repeated deliveries."""
        deliveries = Deliveries(deps.deliveries, deps.clock)

        app.use(_OncePerDelivery(deliveries))

        @app.command("/flow")
        async def flow_command(
            ack: AsyncAck, command: dict[str, Any], respond: AsyncRespond, req: AsyncBoltRequest
        ) -> None:
            await self.dispatch(ack, command, respond, deps, deliveries, _signature(req))


class _OncePerDelivery(RequestMiddleware):
    """Clicks and submissions delivered again (Slack retries, replays) are acknowledged
    only."""

    def __init__(self, deliveries: Deliveries) -> None:
        self._deliveries = deliveries

    async def before(self, req: AsyncBoltRequest) -> BoltResponse | None:
        kind = req.body.get("type")
        if kind not in _DEDUPED_PAYLOADS:
            return None
        deliveries = self._deliveries
        key = delivery_key(str(kind), req.body.get("trigger_id"), _signature(req))
        if not deliveries.first_here(key) or (
            kind not in _RECORDED_AFTER_ACK and not await deliveries.first_durably(key)
        ):
            log.info("ignoring a repeated %s delivery", kind)
            return BoltResponse(status=200, body="")
        if kind in _RECORDED_AFTER_ACK:
            req.context["ack"] = _RecordingAck(
                req.context.ack, lambda: deliveries.first_durably(key)
            )
        return None


def _signature(req: AsyncBoltRequest) -> str | None:
    values = req.headers.get("x-slack-signature") or []
    return values[0] if values else None


async def _help(ctx: CommandContext) -> None:  # answered in the acknowledgement
    await ctx.reply(**ctx.router.help_answer(ctx.args))


SUBCOMMANDS: list[Subcommand] = [
    Subcommand("help", HELP_USAGE, "Show this help, or one subcommand's usage", _help),
]
