"""Automated flows: matching Slack events and inbound webhooks to flows, and starting runs.

- Events (a message matching a pattern, an emoji reaction, a member joining a channel) are
  parsed from the Events API body by `parse_event`, which also drops what must never start
  a flow: the bot's own messages (its user, bot id or app), edits, deletions and other
  message subtypes. `TriggerService.handle_event` starts one run per matching enabled
  automated flow of the event's workspace, with run key `evt:<event id>:<flow id>`, so the
  retries Slack sends for one event (X-Slack-Retry-Num) start nothing more.
- Channels in triggers may be `#name`, an id or `<#C…|name>`; a name is compared with the
  event channel's name as Slack reports it now (`ChannelNames`, cached by the adapter), so
  renames and ids both work.
- Chains stop at `max_depth`: a run started by an event has the depth of what caused it
  plus one, and is not started beyond the maximum. A message's depth is read from its
  Flowbot message metadata (the shape `run_message_metadata` makes for a run's posts), a
  webhook call's from its `X-Flowbot-Depth` header; anything else is depth 0.
- Webhooks: `TriggerService.receive_webhook` checks the flow's secret token in constant
  time (sha256 digests and `hmac.compare_digest`) and answers with an HTTP status and a
  JSON body; the aiohttp adapter is `bot.webhooks`.
"""

from __future__ import annotations

import hmac
import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, Protocol

from flows import bounded
from flows.catalog import hash_webhook_token
from flows.definition import MemberJoinedTrigger, MessageTrigger, ReactionTrigger, WebhookTrigger
from flows.ports import Clock
from flows.records import FlowRecord, RunRecord, RunTrigger
from flows.runner import DuplicateRun, RunRefused
from flows.safe_regex import UserRegexError
from flows.safe_regex import search as regex_search
from flows.scheduling import RunStarter, default_inputs
from flows.slack_ids import parse_channel
from flows.templating import TemplateError
from flows.trigger_log import Reason, TriggerLog, when_allows

log = logging.getLogger(__name__)

TOKEN_HEADER = "X-Flowbot-Token"
DEPTH_HEADER = "X-Flowbot-Depth"
# Optional: a sender's delivery id; a repeated delivery starts nothing more.
DELIVERY_HEADER = "Idempotency-Key"
MAX_WEBHOOK_BODY = 256 * 1024
METADATA_EVENT_TYPE = "flowbot_run"
# Message subtypes that are a person (or an integration) saying something.
_MESSAGE_SUBTYPES = frozenset({None, "thread_broadcast", "file_share", "me_message", "bot_message"})
# Regexes search at most this much of a message (Slack caps messages at 40,000 characters).
_MAX_MATCHED_TEXT = 40_000

EventType = Literal["message", "reaction", "member_joined"]


def event_run_key(event_id: str, flow_id: str) -> str:
    return f"evt:{event_id}:{flow_id}"


def webhook_run_key(flow_id: str, delivery: str) -> str:
    return f"hook:{flow_id}:{delivery}"


def token_matches(token: str | None, token_hash: str | None) -> bool:
    """Constant-time comparison of a presented token's sha256 digest with the stored one."""
    presented = hash_webhook_token(token or "")
    if not token or not token_hash:
        hmac.compare_digest(presented, presented)  # a missing token costs what a wrong one costs
        return False
    return hmac.compare_digest(presented.encode(), token_hash.encode())


def run_message_metadata(run: RunRecord) -> dict[str, Any]:
    """The `metadata` of a message a run posts, so that flows it triggers know the depth."""
    return {
        "event_type": METADATA_EVENT_TYPE,
        "event_payload": {"run_id": run.id, "flow_id": run.flow_id, "depth": run.depth},
    }


def depth_from_metadata(metadata: Any) -> int:
    if not isinstance(metadata, Mapping) or metadata.get("event_type") != METADATA_EVENT_TYPE:
        return 0
    payload = metadata.get("event_payload")
    value = payload.get("depth") if isinstance(payload, Mapping) else None
    try:
        return max(int(value), 0) if value is not None else 0
    except (TypeError, ValueError):
        return 0


def parse_depth(header: str | None) -> int | None:
    """The X-Flowbot-Depth header: absent is 0; None if malformed."""
    if header is None or not header.strip():
        return 0
    text = header.strip()
    return int(text) if text.isdigit() and len(text) < 6 else None


def match_message(pattern: str, text: str) -> dict[str, Any] | None:
    """What a pattern found, as templates see it (see `flows.gallery`): `trigger.match`
    is the list of the regex groups (`trigger.match[0]` is the first group),
    `trigger.groups` the named groups (`trigger.groups.service`) and `trigger.matched`
    the whole matched text. A group that took no part in the match is ""."""
    try:
        found = regex_search(pattern, text[:_MAX_MATCHED_TEXT])
    except UserRegexError:
        return None
    if found is None:
        return None
    groups = ["" if g is None else g for g in found.groups()]
    named = {k: "" if v is None else v for k, v in found.groupdict().items()}
    return {"match": groups, "groups": named, "matched": found.group(0)}


def reaction_matches(wanted: str, reaction: str) -> bool:
    """`thumbsup` matches `thumbsup` and its skin tones (`thumbsup::skin-tone-2`)."""
    return reaction == wanted or reaction.split("::", 1)[0] == wanted


# ------------------------------------------------------------------ events


@dataclass(frozen=True)
class SlackEvent:
    """An event that may start automated flows, as `parse_event` extracted it."""

    type: EventType
    team_id: str
    event_id: str
    channel: str
    user: str | None
    text: str = ""
    ts: str | None = None
    thread_ts: str | None = None
    reaction: str | None = None
    item_user: str | None = None
    inviter: str | None = None
    depth: int = 0
    extra: dict[str, Any] = field(default_factory=dict)
    own: bool = False  # the bot's own message: recorded where it reaches a trigger, never run

    def data(self) -> dict[str, Any]:
        """What the run's `trigger.…` templates see (besides type and user)."""
        base: dict[str, Any] = {"channel": self.channel, "event_id": self.event_id}
        if self.type == "message":
            base.update(text=self.text, ts=self.ts, thread_ts=self.thread_ts)
        elif self.type == "reaction":
            base.update(
                emoji=self.reaction, reaction=self.reaction, ts=self.ts, item_user=self.item_user
            )
        else:
            base.update(inviter=self.inviter)
        return {**base, **self.extra}


def _mapping(value: Any) -> Mapping[str, Any]:
    return value if isinstance(value, Mapping) else {}


def _is_ours(
    event: Mapping[str, Any], body: Mapping[str, Any], bot_user_id: str | None, bot_id: str | None
) -> bool:
    profile = _mapping(event.get("bot_profile"))
    app_id = body.get("api_app_id")
    return bool(
        (bot_user_id and event.get("user") == bot_user_id)
        or (bot_id and (event.get("bot_id") == bot_id or profile.get("id") == bot_id))
        or (app_id and (event.get("app_id") == app_id or profile.get("app_id") == app_id))
    )


def _parse_message(
    event: Mapping[str, Any],
    body: Mapping[str, Any],
    bot_user_id: str | None,
    bot_id: str | None,
    keep_own: bool = False,
) -> SlackEvent | None:
    if event.get("subtype") not in _MESSAGE_SUBTYPES or event.get("hidden"):
        return None
    own = _is_ours(event, body, bot_user_id, bot_id)
    if own and not keep_own:
        return None
    team_id = _team_of(body, event)
    channel = str(event.get("channel") or "")
    ts = str(event.get("ts") or "")
    if not channel or not team_id:
        return None
    return SlackEvent(
        type="message",
        team_id=team_id,
        event_id=str(body.get("event_id") or "") or f"{channel}-{ts}",
        channel=channel,
        user=event.get("user") or event.get("bot_id"),
        text=str(event.get("text") or ""),
        ts=ts or None,
        thread_ts=event.get("thread_ts"),
        depth=depth_from_metadata(event.get("metadata")),
        own=own,
    )


def _parse_reaction(
    event: Mapping[str, Any], body: Mapping[str, Any], bot_user_id: str | None
) -> SlackEvent | None:
    team_id = _team_of(body, event)
    item = _mapping(event.get("item"))
    channel = str(item.get("channel") or "")
    if item.get("type") != "message" or not channel or not team_id:
        return None
    if bot_user_id and event.get("user") == bot_user_id:
        return None
    fallback_id = f"{channel}-{item.get('ts')}-{event.get('event_ts')}"
    return SlackEvent(
        type="reaction",
        team_id=team_id,
        event_id=str(body.get("event_id") or "") or fallback_id,
        channel=channel,
        user=event.get("user"),
        ts=item.get("ts"),
        reaction=str(event.get("reaction") or ""),
        item_user=event.get("item_user"),
    )


def _parse_member_joined(
    event: Mapping[str, Any], body: Mapping[str, Any], bot_user_id: str | None
) -> SlackEvent | None:
    team_id = _team_of(body, event)
    channel = str(event.get("channel") or "")
    if not channel or not team_id or (bot_user_id and event.get("user") == bot_user_id):
        return None
    fallback_id = f"{channel}-{event.get('user')}-{event.get('event_ts')}"
    return SlackEvent(
        type="member_joined",
        team_id=team_id,
        event_id=str(body.get("event_id") or "") or fallback_id,
        channel=channel,
        user=event.get("user"),
        inviter=event.get("inviter"),
    )


def _team_of(body: Mapping[str, Any], event: Mapping[str, Any]) -> str:
    return str(body.get("team_id") or event.get("team") or "")


def parse_event(
    body: Mapping[str, Any],
    bot_user_id: str | None = None,
    bot_id: str | None = None,
    *,
    keep_own: bool = False,
) -> SlackEvent | None:
    """A `message`, `reaction_added` or `member_joined_channel` event that may start flows,
    or None for anything that must not (the bot's own messages, edits, deletions…).
    `keep_own`: the bot's own messages are returned marked `own` (for the trigger log)."""
    event = body.get("event")
    if not isinstance(event, Mapping):
        return None
    kind = event.get("type")
    if kind == "message":
        return _parse_message(event, body, bot_user_id, bot_id, keep_own)
    if kind == "reaction_added":
        return _parse_reaction(event, body, bot_user_id)
    if kind == "member_joined_channel":
        return _parse_member_joined(event, body, bot_user_id)
    return None


# ------------------------------------------------------------------ ports


class ChannelNames(Protocol):
    """A channel's current name (without #), None if Slack does not know it."""

    async def channel_name(self, team_id: str, channel_id: str) -> str | None: ...


class AutomatedFlowSource(Protocol):
    """The flow store, as automated triggers use it."""

    async def get_by_id(self, flow_id: str) -> FlowRecord | None: ...

    async def list_enabled(
        self, trigger_type: str, team_id: str | None = None
    ) -> list[FlowRecord]: ...


@dataclass(frozen=True)
class WebhookResult:
    status: int
    body: dict[str, Any]


def _refusal(status: int, error: str, message: str) -> WebhookResult:
    return WebhookResult(status, {"ok": False, "error": error, "message": message})


# ------------------------------------------------------------------ the service


class TriggerService:
    def __init__(
        self,
        flows: AutomatedFlowSource,
        runner: RunStarter,
        channels: ChannelNames,
        clock: Clock,
        max_depth: int = 3,
        public_url: str | None = None,
        trigger_log: TriggerLog | None = None,
    ) -> None:
        self.trigger_log = trigger_log
        self.flows = flows
        self.runner = runner
        self.channels = channels
        self.clock = clock
        self.max_depth = max_depth
        # Where people reach the bot from outside (shown with webhook addresses), if known.
        self.public_url = public_url

    # --- Slack events

    async def handle_event(self, event: SlackEvent) -> list[RunRecord]:
        """Start the matching automated flows of the event's workspace (once per event).
        Each flow whose trigger the event reached gets a decision in the trigger log; an
        event that reached none is only counted."""
        depth = event.depth + 1
        runs: list[RunRecord] = []
        reached = False
        for flow in await self.flows.list_enabled(event.type, event.team_id):
            if flow.kind != "automated" or not flow.enabled:
                continue
            try:
                data = await self._match(flow, event)
            except Exception:
                log.exception("matching event %s against flow %s failed", event.event_id, flow.id)
                continue
            if data is None:
                continue
            reached = True
            trigger = RunTrigger(type=event.type, user=event.user, data=data)
            refusal = self._refusal_of(event, depth)
            if refusal is not None:
                await self._log(flow, event.type, refusal, detail=event.event_id)
                continue
            if not await self.when_allows(flow, trigger, event.event_id):
                continue
            run = await self._start(flow, trigger, event_run_key(event.event_id, flow.id), depth)
            if run is not None:
                runs.append(run)
        if not reached and self.trigger_log is not None:
            self.trigger_log.count_unmatched(event.team_id, event.type)
        return runs

    def _refusal_of(self, event: SlackEvent, depth: int) -> Reason | None:
        if event.own:
            return "own_message"
        if depth > self.max_depth:
            log.info("event %s: trigger depth %d exceeds %d", event.event_id, depth, self.max_depth)
            return "too_deep"
        return None

    async def _log(
        self,
        flow: FlowRecord,
        trigger: str,
        reason: Reason,
        *,
        run_id: str | None = None,
        detail: str = "",
    ) -> None:
        if self.trigger_log is not None:
            await self.trigger_log.record(
                flow.team_id, flow.id, trigger, reason, run_id=run_id, detail=detail
            )

    async def when_allows(self, flow: FlowRecord, trigger: RunTrigger, detail: str) -> bool:
        """The trigger's `when` (recorded as filtered when false or failing)."""
        when = flow.definition.trigger.when
        try:
            if when_allows(when, trigger.type, trigger.user, trigger.data):
                return True
        except TemplateError as exc:
            await self._log(flow, trigger.type, "condition_error", detail=f"{detail}: {exc}")
            return False
        await self._log(flow, trigger.type, "filtered", detail=detail)
        return False

    async def _match(self, flow: FlowRecord, event: SlackEvent) -> dict[str, Any] | None:
        trigger = flow.definition.trigger
        data = event.data()
        if event.type == "message" and isinstance(trigger, MessageTrigger):
            if not await self.channel_matches(trigger.channel, event):
                return None  # the channel first: most messages stop here, unmatched
            found = match_message(trigger.pattern, event.text)
            if found is None:
                return None
            return {**data, **found}
        if event.type == "reaction" and isinstance(trigger, ReactionTrigger):
            if not reaction_matches(trigger.emoji, event.reaction or ""):
                return None
            if trigger.channel is not None and not await self.channel_matches(
                trigger.channel, event
            ):
                return None
            return data
        if event.type == "member_joined" and isinstance(trigger, MemberJoinedTrigger):
            return data if await self.channel_matches(trigger.channel, event) else None
        return None

    async def channel_matches(self, ref: str, event: SlackEvent) -> bool:
        """`#name`, `C…` or `<#C…|name>` against the event's channel id."""
        ref = ref.strip()
        channel_id = parse_channel(ref)
        if channel_id is not None:
            return channel_id == event.channel
        wanted = ref.lstrip("#").casefold()
        name = await self.channels.channel_name(event.team_id, event.channel)
        return name is not None and name.casefold() == wanted

    async def _start(
        self, flow: FlowRecord, trigger: RunTrigger, run_key: str, depth: int
    ) -> RunRecord | None:
        try:
            run = await self.runner.start_run(
                flow, trigger, default_inputs(flow), run_key=run_key, depth=depth
            )
        except DuplicateRun:
            log.info("flow %s: %s was started already", flow.id, run_key)
            await self._log(flow, trigger.type, "duplicate", detail=run_key)
            return None
        except RunRefused as exc:
            log.info("flow %s refused a %s run: %s", flow.id, trigger.type, exc)
            await self._log(flow, trigger.type, "disabled")
            return None
        await self._log(flow, trigger.type, "started", run_id=run.id)
        return run

    # --- webhooks

    async def receive_webhook(
        self,
        flow_id: str,
        token: str | None,
        body: bytes,
        *,
        depth_header: str | None = None,
        delivery: str | None = None,
        query: Mapping[str, str] | None = None,
        headers: Mapping[str, str] | None = None,
    ) -> WebhookResult:
        """`POST /hooks/<flow id>`: 202 with the run id, or the reason nothing ran."""
        flow = await self._webhook_flow(flow_id, token, body)
        if isinstance(flow, WebhookResult):
            return flow
        call = self._read_call(body, depth_header)
        if isinstance(call, WebhookResult):
            return call
        payload, depth = call
        if depth > self.max_depth:
            await self._log(flow, "webhook", "too_deep")
            return _refusal(
                422,
                "trigger_depth_exceeded",
                f"Flows triggering flows stop at depth {self.max_depth}.",
            )
        delivery = (delivery or "").strip()[:200] or None
        data: dict[str, Any] = {
            "body": payload,
            "query": dict(query or {}),
            "headers": visible_headers(headers or {}),
            "flow_id": flow.id,
            "received_at": self.clock.now().isoformat(),
        }
        if delivery:
            data["delivery"] = delivery
        if not await self.when_allows(flow, RunTrigger(type="webhook", data=data), delivery or ""):
            return WebhookResult(200, {"ok": True, "filtered": True})
        return await self._start_webhook_run(flow, data, delivery, depth)

    async def _webhook_flow(
        self, flow_id: str, token: str | None, body: bytes
    ) -> FlowRecord | WebhookResult:
        """The enabled webhook flow this call may start, or the refusal (checked in this
        order: size, flow, token, on/off)."""
        if len(body) > MAX_WEBHOOK_BODY:
            return _refusal(400, "body_too_large", f"The body is over {MAX_WEBHOOK_BODY} bytes.")
        flow = await self.flows.get_by_id(flow_id) if _safe_id(flow_id) else None
        if flow is None or not isinstance(flow.definition.trigger, WebhookTrigger):
            return _refusal(404, "unknown_flow", "There is no webhook flow with this id.")
        if not token_matches(token, flow.webhook_token_hash):
            await self._log(flow, "webhook", "wrong_token")
            return _refusal(401, "invalid_token", f"Wrong or missing {TOKEN_HEADER} header.")
        if not flow.enabled:
            await self._log(flow, "webhook", "disabled")
            return _refusal(409, "flow_disabled", "This flow is turned off.")
        return flow

    def _read_call(self, body: bytes, depth_header: str | None) -> tuple[Any, int] | WebhookResult:
        """The JSON body and the depth of the run to start, or the refusal."""
        try:
            payload: Any = bounded.loads(body) if body.strip() else {}
        except bounded.TooComplex as exc:
            return _refusal(400, "body_too_complex", f"The body is refused: {exc}.")
        except ValueError:  # UnicodeDecodeError included
            return _refusal(400, "invalid_json", "The body must be JSON.")
        incoming = parse_depth(depth_header)
        if incoming is None:
            return _refusal(400, "invalid_depth", f"{DEPTH_HEADER} must be a whole number.")
        return payload, incoming + 1

    async def _start_webhook_run(
        self, flow: FlowRecord, data: dict[str, Any], delivery: str | None, depth: int
    ) -> WebhookResult:
        try:
            run = await self.runner.start_run(
                flow,
                RunTrigger(type="webhook", data=data),
                default_inputs(flow),
                run_key=webhook_run_key(flow.id, delivery) if delivery else None,
                depth=depth,
            )
        except DuplicateRun:
            await self._log(flow, "webhook", "duplicate", detail=delivery or "")
            return WebhookResult(200, {"ok": True, "duplicate": True, "delivery": delivery})
        except RunRefused as exc:
            await self._log(flow, "webhook", "disabled")
            code = "flow_disabled" if exc.why == "disabled" else "workspace_uninstalled"
            return _refusal(409, code, str(exc))
        await self._log(flow, "webhook", "started", run_id=run.id)
        return WebhookResult(202, {"ok": True, "run_id": run.id})


# Never handed to a run: credentials of the call itself.
_SECRET_HEADERS = frozenset(
    {TOKEN_HEADER.lower(), "authorization", "cookie", "proxy-authorization"}
)


def visible_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """The request headers a run may see (`trigger.headers`), lowercased, secrets dropped."""
    out: dict[str, str] = {}
    for name, value in headers.items():
        key = name.lower()
        if key not in _SECRET_HEADERS and len(out) < 50:
            out[key] = value[:1000]
    return out


_SAFE_ID = re.compile(r"^[A-Za-z0-9_-]{1,64}$")


def _safe_id(flow_id: str) -> bool:
    return bool(_SAFE_ID.match(flow_id))
