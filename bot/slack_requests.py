"""What reaches Bolt from `POST /slack/events` has been checked here first.

- The signature is computed over the raw bytes (Slack signs bytes, and a body that is not
  UTF-8 must be refused, not crash the decoder); a timestamp that is not a whole number
  of seconds within five minutes is refused like a bad signature (401), quietly.
- A signed body must be UTF-8 (Slack sends nothing else; a declared charset is ignored)
  and, once parsed as Bolt parses it, have the shape of what Slack sends: the parts the
  listeners read are validated by the models below (pydantic), so a listener never meets
  `payload=null`, `actions=[null]` or a missing team (400).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
from collections.abc import Callable, Mapping
from typing import Any, NamedTuple
from urllib.parse import parse_qsl

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from slack_bolt.async_app import AsyncBoltContext
from slack_bolt.request.async_internals import build_async_context
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.request.internals import (
    build_normalized_headers,
    extract_content_type,
    parse_query,
)

MAX_SKEW = 60 * 5
_MAX_TIMESTAMP_DIGITS = 12


class BadRequest(Exception):
    """A signed request whose body is not what Slack sends: `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def signature_is_valid(
    secret: str,
    body: bytes,
    headers: Mapping[str, str],
    now: Callable[[], float] = time.time,
) -> bool:
    """Slack's v0 signature over the raw body, with a timestamp within five minutes."""
    timestamp = headers.get("X-Slack-Request-Timestamp") or ""
    signature = headers.get("X-Slack-Signature") or ""
    if not secret or not signature:
        return False
    if not (timestamp.isascii() and timestamp.isdigit()) or len(timestamp) > _MAX_TIMESTAMP_DIGITS:
        return False
    if abs(now() - int(timestamp)) > MAX_SKEW:
        return False
    base = b"v0:" + timestamp.encode("ascii") + b":" + body
    expected = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return hmac.compare_digest(expected.encode(), signature.encode("utf-8", "replace"))


# --- the parts of Slack's payloads the listeners read ---------------------------------


class _Part(BaseModel):
    model_config = ConfigDict(extra="allow")


class _Id(_Part):
    id: str


class _Option(_Part):
    value: str


class _Action(_Part):
    action_id: str
    block_id: str | None = None
    type: str | None = None
    value: str | None = None
    selected_option: _Option | None = None
    selected_options: list[_Option] | None = None
    selected_user: str | None = None
    selected_channel: str | None = None
    selected_conversation: str | None = None
    selected_date: str | None = None


class _State(_Part):
    values: dict[str, dict[str, dict[str, Any]]] = Field(default_factory=dict)


class _View(_Part):
    id: str
    callback_id: str = ""
    private_metadata: str = ""
    hash: str | None = None
    state: _State | None = None
    root_view_id: str | None = None
    previous_view_id: str | None = None


class _Container(_Part):
    channel_id: str | None = None
    message_ts: str | None = None
    view_id: str | None = None


class _Interaction(_Part):
    type: str
    team: _Id
    user: _Id
    trigger_id: str | None = None
    response_url: str | None = None
    container: _Container | None = None
    channel: _Id | None = None
    message: dict[str, Any] | None = None


class _BlockActions(_Interaction):
    actions: list[_Action] = Field(min_length=1)
    view: _View | None = None


class _ViewPayload(_Interaction):
    view: _View
    response_urls: list[dict[str, str]] = Field(default_factory=list)


class _Event(_Part):
    type: str


class _EventCallback(_Part):
    type: str
    team_id: str
    event_id: str
    event: _Event


class _UrlVerification(_Part):
    type: str
    challenge: str


class _Command(_Part):
    command: str
    team_id: str
    user_id: str
    text: str = ""
    channel_id: str = ""
    trigger_id: str = ""
    response_url: str = ""


_BY_TYPE: dict[str, type[_Part]] = {
    "block_actions": _BlockActions,
    "view_submission": _ViewPayload,
    "view_closed": _ViewPayload,
    "event_callback": _EventCallback,
    "url_verification": _UrlVerification,
    "shortcut": _Interaction,
    "message_action": _Interaction,
}


def parse_body(body: str, content_type: str | None) -> dict[str, Any]:
    """The body as Bolt will see it (`slack_bolt.request.internals.parse_body`)."""
    if not body:
        return {}
    if content_type == "application/json" or body.startswith("{"):
        parsed: Any = json.loads(body)
    elif "payload" in body:
        params = dict(parse_qsl(body, keep_blank_values=True))
        payload = params.get("payload")
        parsed = json.loads(payload) if payload is not None else {}
    else:
        parsed = dict(parse_qsl(body, keep_blank_values=True))
    if not isinstance(parsed, dict):
        raise BadRequest("The payload must be a JSON object.")
    return parsed


class CheckedRequest(NamedTuple):
    text: str  # the body as sent
    parsed: dict[str, Any]  # as Bolt parses it


def check_request(raw: bytes, content_type: str | None) -> CheckedRequest:
    """The body, as text and parsed, when it has the shape of what Slack sends; else
    `BadRequest`."""
    try:
        body = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise BadRequest("The body must be UTF-8.") from None
    try:
        parsed = parse_body(body, content_type)
    except (ValueError, RecursionError):
        raise BadRequest("The payload is not valid JSON.") from None
    model = _model_for(parsed)
    if model is not None:
        try:
            model.model_validate(parsed)
        except ValidationError as exc:
            first = exc.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "payload"
            raise BadRequest(f"Unexpected payload: {where}: {first['msg']}.") from None
    return CheckedRequest(body, parsed)


class CheckedBoltRequest(AsyncBoltRequest):
    """Bolt's request for a body `check_request` has parsed already. What
    `AsyncBoltRequest.__init__` sets in HTTP mode (slack-bolt, pinned), without parsing
    the body a second time and building the context twice."""

    def __init__(self, checked: CheckedRequest, query: str, headers: Any) -> None:
        self.raw_body = checked.text
        self.query = parse_query(query)
        self.headers = build_normalized_headers(headers)
        self.content_type = extract_content_type(self.headers)
        self.body = checked.parsed
        self.context = build_async_context(AsyncBoltContext({}), checked.parsed)
        self.lazy_only = bool(self.headers.get("x-slack-bolt-lazy-only", [False])[0])
        self.lazy_function_name = self.headers.get("x-slack-bolt-lazy-function-name", [None])[0]
        self.mode = "http"


def _model_for(parsed: dict[str, Any]) -> type[_Part] | None:
    if "command" in parsed:
        return _Command
    kind = parsed.get("type")
    if kind is None:
        return None  # not a kind of request we listen to: Bolt answers it
    if not isinstance(kind, str):
        raise BadRequest("Unexpected payload: type must be text.")
    return _BY_TYPE.get(kind)
