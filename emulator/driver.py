"""Plays Slack's side towards the bot: signed slash commands, interactions and events."""

from __future__ import annotations

import json
import secrets
import time
import uuid
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from slack_sdk.signature import SignatureVerifier

from .server import JSON, SlackEmulator, SlackError, elements, public_message, public_view
from .socket_mode import NoConnection, SocketModeEmulator

ACK_TIMEOUT = 3.0  # Slack gives up on an acknowledgement after 3 seconds
FORM = "application/x-www-form-urlencoded"
USER_AGENT = "Slackbot 1.0 (+https://api.slack.com/robots)"
VERIFICATION_TOKEN = "emulator-verification-token"

# element type -> (key in view.state.values, key of its initial value)
_STATE_KEYS = {
    "plain_text_input": ("value", "initial_value"),
    "email_text_input": ("value", "initial_value"),
    "url_text_input": ("value", "initial_value"),
    "number_input": ("value", "initial_value"),
    "static_select": ("selected_option", "initial_option"),
    "external_select": ("selected_option", "initial_option"),
    "radio_buttons": ("selected_option", "initial_option"),
    "multi_static_select": ("selected_options", "initial_options"),
    "multi_external_select": ("selected_options", "initial_options"),
    "checkboxes": ("selected_options", "initial_options"),
    "users_select": ("selected_user", "initial_user"),
    "multi_users_select": ("selected_users", "initial_users"),
    "conversations_select": ("selected_conversation", "initial_conversation"),
    "multi_conversations_select": ("selected_conversations", "initial_conversations"),
    "channels_select": ("selected_channel", "initial_channel"),
    "multi_channels_select": ("selected_channels", "initial_channels"),
    "datepicker": ("selected_date", "initial_date"),
    "timepicker": ("selected_time", "initial_time"),
    "datetimepicker": ("selected_date_time", "initial_date_time"),
}


@dataclass
class DriverResponse:
    """The bot's HTTP answer; `error` says what Slack would have shown instead of the result."""

    status: int
    text: str
    json: JSON | None
    elapsed: float
    headers: dict[str, str]
    error: str | None = None

    @property
    def timed_out(self) -> bool:
        return self.elapsed > ACK_TIMEOUT

    @property
    def ok(self) -> bool:
        return self.status == 200 and self.error is None


def find_element(blocks: list[JSON], action_id: str, value: str | None = None) -> tuple[str, JSON]:
    """(block_id, element) of the first interactive element with this action_id (and value)."""
    for block in blocks:
        for element in elements(block):
            if element.get("action_id") == action_id and value in (None, element.get("value")):
                return str(block.get("block_id")), element
    raise LookupError(f"no element with action_id={action_id!r} value={value!r}")


def _option(element: JSON, wanted: str) -> JSON:
    options = list(element.get("options") or [])
    for group in element.get("option_groups") or []:
        options += group.get("options") or []
    for option in options:
        if wanted in (option.get("value"), option.get("text", {}).get("text")):
            return dict(option)
    raise ValueError(f"{wanted!r} is not an option of {element.get('action_id')!r}")


def _state_value(element: JSON, raw: str | list[str] | None, block_id: str, required: bool) -> Any:
    kind = element.get("type", "")
    key, initial_key = _STATE_KEYS.get(kind, ("value", "initial_value"))
    multi = key.endswith("s")
    if raw is None:
        value = element.get(initial_key)
        if required and value in (None, "", []):
            raise ValueError(f"input {block_id!r} is required")
        return value if value is not None or not multi else []
    if isinstance(raw, list) != multi:
        raise ValueError(f"input {block_id!r} ({kind}) takes {'a list' if multi else 'one value'}")
    values = [str(v) for v in (raw if isinstance(raw, list) else [raw])]
    if kind in ("static_select", "radio_buttons", "multi_static_select", "checkboxes"):
        out: list[Any] = [_option(element, v) for v in values]
    elif kind.endswith("external_select"):
        out = [{"text": {"type": "plain_text", "text": v}, "value": v} for v in values]
    elif kind == "datetimepicker":
        out = [int(v) for v in values]
    else:
        out = list(values)
    if kind == "plain_text_input":
        lo, hi = element.get("min_length", 0), element.get("max_length", 3000)
        if not lo <= len(out[0]) <= hi:
            raise ValueError(f"input {block_id!r} must have {lo} to {hi} characters")
    if kind == "number_input":
        number = float(out[0]) if element.get("is_decimal_allowed") else int(out[0])
        low, high = element.get("min_value"), element.get("max_value")
        if (low is not None and number < float(low)) or (high is not None and number > float(high)):
            raise ValueError(f"input {block_id!r} is out of range")
    return out if multi else out[0]


def state_values(
    view: JSON, inputs: Mapping[str, str | list[str]] | None = None, *, strict: bool = False
) -> dict[str, dict[str, JSON]]:
    """`view.state.values` for input blocks: given inputs (by block_id or action_id), else the
    elements' initial values. `strict` refuses what Slack's client would refuse to submit."""
    inputs = dict(inputs or {})
    values: dict[str, dict[str, JSON]] = {}
    for block in view.get("blocks") or []:
        element = block.get("element")
        if block.get("type") != "input" or not isinstance(element, dict):
            continue
        block_id, action_id = str(block.get("block_id")), str(element.get("action_id"))
        key = block_id if block_id in inputs else action_id if action_id in inputs else None
        raw = inputs.pop(key) if key is not None else None
        required = strict and not block.get("optional")
        state_key = _STATE_KEYS.get(element.get("type", ""), ("value", ""))[0]
        value = _state_value(element, raw, block_id, required)
        values[block_id] = {action_id: {"type": element.get("type"), state_key: value}}
    if strict and inputs:
        raise ValueError(f"no input blocks named {sorted(inputs)}")
    return values


class SlackDriver:
    """Sends the bot what Slack sends, signed, over real HTTP (or as envelopes on its Socket
    Mode connection, with `socket`), and applies its answers."""

    def __init__(
        self,
        bot_events_url: str,
        signing_secret: str,
        emulator: SlackEmulator,
        session: aiohttp.ClientSession | None = None,
        *,
        socket: SocketModeEmulator | None = None,
    ) -> None:
        self.url = bot_events_url
        self.socket = socket
        self.verifier = SignatureVerifier(signing_secret)
        self.emulator = emulator
        self._session = session
        self._own_session = session is None
        self._last_actions: dict[tuple[str, str], JSON] = {}
        self.last_event_id: str | None = None

    async def close(self) -> None:
        if self._own_session and self._session is not None:
            await self._session.close()
            self._session = None

    @classmethod
    def over_socket(cls, emulator: SlackEmulator) -> SlackDriver:
        """A driver delivering through the emulator's Socket Mode connection to the bot."""
        return cls("", "unused-over-the-socket", emulator, socket=emulator.socket_mode)

    async def __aenter__(self) -> SlackDriver:
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.close()

    # ---------------------------------------------------------------- transport

    def sign(self, body: str | bytes, timestamp: int | None = None) -> dict[str, str]:
        ts = str(int(time.time()) if timestamp is None else timestamp)
        signature = self.verifier.generate_signature(timestamp=ts, body=body) or ""
        return {"X-Slack-Request-Timestamp": ts, "X-Slack-Signature": signature}

    async def post_raw(self, body: bytes, headers: Mapping[str, str]) -> DriverResponse:
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=60))
        start = time.perf_counter()
        async with self._session.post(self.url, data=body, headers=dict(headers)) as res:
            text = await res.text()
            elapsed = time.perf_counter() - start
            status, res_headers = res.status, dict(res.headers)
        try:
            parsed = json.loads(text) if text.strip() else None
        except ValueError:
            parsed = None
        return DriverResponse(
            status, text, parsed if isinstance(parsed, dict) else None, elapsed, res_headers
        )

    async def _send(
        self, body: str, content_type: str, headers: Mapping[str, str] | None = None
    ) -> DriverResponse:
        if self.socket is not None:
            return await self._send_over_socket(self.socket, body, content_type, headers or {})
        all_headers = {"Content-Type": content_type, "User-Agent": USER_AGENT, **self.sign(body)}
        return await self.post_raw(body.encode(), {**all_headers, **(headers or {})})

    async def _send_over_socket(
        self, socket: SocketModeEmulator, body: str, content_type: str, headers: Mapping[str, str]
    ) -> DriverResponse:
        """What would have been POSTed, as a Socket Mode envelope; the ack as the answer."""
        if content_type == FORM:
            fields = dict(parse_qsl(body, keep_blank_values=True))
            if set(fields) == {"payload"}:
                kind, payload = "interactive", json.loads(fields["payload"])
            else:
                kind, payload = "slash_commands", fields
        else:
            kind, payload = "events_api", json.loads(body)
        start = time.perf_counter()
        try:
            ack = await socket.send(
                kind,
                payload,
                retry_attempt=int(headers.get("X-Slack-Retry-Num", 0)),
                retry_reason=headers.get("X-Slack-Retry-Reason", ""),
            )
        except NoConnection:
            return DriverResponse(0, "", None, 0.0, {}, error="no_socket_connection")
        elapsed = time.perf_counter() - start
        if ack is None:  # never acknowledged
            return DriverResponse(200, "", None, elapsed, {}, error="operation_timeout")
        text = json.dumps(ack.payload) if ack.payload else ""
        return DriverResponse(200, text, ack.payload, ack.elapsed, {})

    async def _send_payload(self, payload: JSON) -> DriverResponse:
        return await self._send(urlencode({"payload": json.dumps(payload)}), FORM)

    # ---------------------------------------------------------------- shapes

    def _user(self, user: str) -> JSON:
        known = self.emulator.users.get(user)
        name = known["name"] if known else user.lower()
        return {"id": user, "username": name, "name": name, "team_id": self.emulator.team_id}

    def _channel_name(self, channel: str) -> str:
        info = self.emulator.channels.get(channel, {})
        if info.get("is_im"):
            return "directmessage"
        if info.get("is_private") and not info.get("is_mpim"):
            return "privategroup"
        return str(info.get("name", channel.lower()))

    def _base(self, kind: str, user: str) -> JSON:
        emu = self.emulator
        return {
            "type": kind,
            "user": self._user(user),
            "api_app_id": emu.app_id,
            "token": VERIFICATION_TOKEN,
            "trigger_id": emu.issue_trigger_id(user),
            "team": {"id": emu.team_id, "domain": emu.team_domain},
            "enterprise": None,
            "is_enterprise_install": False,
        }

    # ---------------------------------------------------------------- slash commands

    async def slash(
        self,
        user: str,
        text: str,
        command: str = "/flow",
        channel: str = "C0GENERAL",
        team: str | None = None,
    ) -> DriverResponse:
        """A slash command; a non-empty acknowledgement body is shown as Slack shows it."""
        emu = self.emulator
        channel = emu.resolve_channel(channel, create=True)
        response_url = emu.new_response_url(user, channel)
        form = {
            "token": VERIFICATION_TOKEN,
            "team_id": team or emu.team_id,
            "team_domain": emu.team_domain,
            "channel_id": channel,
            "channel_name": self._channel_name(channel),
            "user_id": user,
            "user_name": self._user(user)["name"],
            "command": command,
            "text": text,
            "api_app_id": emu.app_id,
            "is_enterprise_install": "false",
            "response_url": response_url,
            "trigger_id": emu.issue_trigger_id(user),
        }
        resp = await self._send(urlencode(form), FORM)
        if resp.status != 200:
            resp.error = "dispatch_failed"
        elif resp.timed_out:
            resp.error = "operation_timeout"
        elif resp.text.strip():
            body = resp.json if resp.json is not None else {"text": resp.text}
            if any(body.get(k) for k in ("text", "blocks", "attachments")):
                try:
                    emu.deliver_response(response_url, body, via="ack")
                except SlackError as exc:
                    resp.error = exc.error
        return resp

    # ---------------------------------------------------------------- interactivity

    async def block_action(
        self,
        user: str,
        action_id: str,
        value: str | None = None,
        block_id: str = "b",
        *,
        message: JSON | None = None,
        channel: str | None = None,
        view: JSON | None = None,
        container: JSON | None = None,
        retry: bool = False,
        action: JSON | None = None,
        values: dict[str, dict[str, JSON]] | None = None,
    ) -> DriverResponse:
        """A `block_actions` payload from a message (or ephemeral), a view or a home tab.

        `action` overrides fields of the action (type, text, selected_option…); `values`
        is the view state; `retry=True` re-sends the previous identical payload for this
        user and action_id (a duplicate delivery)."""
        key = (user, action_id)
        if retry and key in self._last_actions:
            return await self._send_payload(self._last_actions[key])
        emu = self.emulator
        payload = self._base("block_actions", user)
        act: JSON = {"action_id": action_id, "block_id": block_id, "type": "button"}
        if value is not None:
            act["value"] = value
        act.update(action or {})
        act["action_ts"] = emu.new_ts()
        if message is not None and not channel:
            channel = message.get("channel") or emu.channel_of(message.get("ts"))
        if message is not None and channel:
            ephemeral = bool(message.get("is_ephemeral"))
            payload["container"] = container or {
                "type": "message",
                "message_ts": message["ts"],
                "channel_id": channel,
                "is_ephemeral": ephemeral,
            }
            if not ephemeral:
                payload["message"] = public_message(message)
            payload["response_url"] = emu.new_response_url(user, channel, message["ts"])
            payload["state"] = {"values": values or {}}
        elif view is not None:
            payload["container"] = container or {"type": "view", "view_id": view["id"]}
            payload["view"] = {**public_view(view), "state": {"values": values or {}}}
        else:
            payload["container"] = container or {}
            if channel:
                payload["response_url"] = emu.new_response_url(user, channel)
        if channel:
            payload["channel"] = {"id": channel, "name": self._channel_name(channel)}
        payload["actions"] = [act]
        self._last_actions[key] = payload
        return await self._send_payload(payload)

    async def click(
        self, user: str, message: JSON, action_id: str, value: str | None = None
    ) -> DriverResponse:
        """Click the button `action_id` (and `value`) of a stored message or ephemeral."""
        block_id, element = find_element(message.get("blocks") or [], action_id, value)
        return await self.block_action(
            user, action_id, element.get("value"), block_id, message=message, action=_act(element)
        )

    async def click_in_view(
        self,
        user: str,
        view_id: str,
        action_id: str,
        value: str | None = None,
        values: dict[str, dict[str, JSON]] | None = None,
    ) -> DriverResponse:
        view = self._open_view(view_id)
        block_id, element = find_element(view.get("blocks") or [], action_id, value)
        state = values if values is not None else state_values(view)
        return await self.block_action(
            user,
            action_id,
            element.get("value"),
            block_id,
            view=view,
            action=_act(element),
            values=state,
        )

    async def click_home(
        self, user: str, action_id: str, value: str | None = None
    ) -> DriverResponse:
        """Click a button of the home tab published for `user`."""
        view = self.emulator.home_views.get(user)
        if view is None:
            raise LookupError(f"no home view published for {user}")
        block_id, element = find_element(view.get("blocks") or [], action_id, value)
        return await self.block_action(
            user, action_id, element.get("value"), block_id, view=view, action=_act(element)
        )

    def _open_view(self, view_id: str) -> JSON:
        view = self.emulator.views.get(view_id)
        if view is None:
            raise LookupError(f"no open view {view_id}")
        return view

    async def view_submission(
        self,
        user: str,
        view_id_or_view: str | JSON,
        values: dict[str, dict[str, JSON]] | None = None,
    ) -> DriverResponse:
        """Submit a modal; its answer (`response_action` or an empty 200) is applied."""
        emu = self.emulator
        if isinstance(view_id_or_view, str):
            rec = self._open_view(view_id_or_view)
        else:
            rec = emu.views.get(view_id_or_view.get("id", ""), view_id_or_view)
        state = values if values is not None else state_values(rec)
        payload = self._base("view_submission", user)
        payload["view"] = {**public_view(rec), "state": {"values": state}}
        payload["response_urls"] = self._response_urls(user, rec, state)
        resp = await self._send_payload(payload)
        if rec.get("id") in emu.views:
            self._apply_view_answer(user, rec, resp)
        return resp

    def _response_urls(self, user: str, view: JSON, state: dict[str, dict[str, JSON]]) -> list:
        urls: list[JSON] = []
        for block in view.get("blocks") or []:
            element = block.get("element") or {}
            if block.get("type") == "input" and element.get("response_url_enabled"):
                by_action = state.get(str(block.get("block_id")), {})
                chosen = by_action.get(str(element.get("action_id")), {})
                channel = chosen.get("selected_conversation") or chosen.get("selected_channel")
                if channel:
                    url = self.emulator.new_response_url(user, channel)
                    ids = {"block_id": block["block_id"], "action_id": element["action_id"]}
                    urls.append({**ids, "channel_id": channel, "response_url": url})
        return urls

    def _apply_view_answer(self, user: str, rec: JSON, resp: DriverResponse) -> None:
        emu = self.emulator
        if resp.status != 200:
            resp.error = f"http_{resp.status}"
            return
        if resp.timed_out:
            resp.error = "operation_timeout"
            return
        body = resp.json or {}
        action = body.get("response_action")
        try:
            if action is None:
                emu.close_view(rec["id"])
            elif action == "clear":
                emu.close_view(rec["id"], clear=True)
            elif action == "update":
                emu.update_view(rec["id"], body.get("view"))
            elif action == "push":
                emu.push_view(user, body.get("view"))
            elif action == "errors":
                inputs = {b.get("block_id") for b in rec["blocks"] if b.get("type") == "input"}
                errors = body.get("errors")
                if not isinstance(errors, dict) or not errors or set(errors) - inputs:
                    resp.error = "invalid_errors"
            else:
                resp.error = f"unknown_response_action: {action}"
        except SlackError as exc:
            resp.error = exc.error

    async def fill_and_submit(
        self, user: str, view_id: str, inputs: Mapping[str, str | list[str]]
    ) -> DriverResponse:
        """Fill input blocks (keyed by block_id or action_id) and submit, as a person would."""
        view = self._open_view(view_id)
        return await self.view_submission(user, view_id, state_values(view, inputs, strict=True))

    async def close_view(self, user: str, view_id: str) -> DriverResponse | None:
        """The user closes the modal (its whole stack); `view_closed` is sent if asked for."""
        view = self._open_view(view_id)
        closed = self.emulator.close_view(view_id, clear=True)
        if not view.get("notify_on_close"):
            return None
        payload = self._base("view_closed", user)
        payload.pop("trigger_id")
        payload["view"] = {**public_view(view), "state": {"values": state_values(view)}}
        payload["is_cleared"] = len(closed) > 1
        return await self._send_payload(payload)

    # ---------------------------------------------------------------- events

    async def event(
        self,
        event: JSON,
        *,
        event_id: str | None = None,
        retry_num: int | None = None,
        retry_reason: str = "http_timeout",
    ) -> DriverResponse:
        """An Events API `event_callback`; `retry_num` adds Slack's retry headers."""
        emu = self.emulator
        self.last_event_id = event_id or f"Ev{secrets.token_hex(5).upper()}"
        body = {
            "token": VERIFICATION_TOKEN,
            "team_id": emu.team_id,
            "context_team_id": emu.team_id,
            "api_app_id": emu.app_id,
            "event": event,
            "type": "event_callback",
            "event_id": self.last_event_id,
            "event_time": int(time.time()),
            "authorizations": [
                {
                    "enterprise_id": None,
                    "team_id": emu.team_id,
                    "user_id": emu.bot_user_id,
                    "is_bot": True,
                    "is_enterprise_install": False,
                }
            ],
            "is_ext_shared_channel": False,
            "event_context": f"4-{secrets.token_urlsafe(24)}",
        }
        headers = {}
        if retry_num is not None:
            headers = {"X-Slack-Retry-Num": str(retry_num), "X-Slack-Retry-Reason": retry_reason}
        return await self._send(json.dumps(body), "application/json", headers)

    def _channel_type(self, channel: str) -> str:
        info = self.emulator.channels.get(channel, {})
        if info.get("is_im"):
            return "im"
        if info.get("is_mpim"):
            return "mpim"
        return "group" if info.get("is_private") else "channel"

    def message_event(
        self,
        user: str,
        channel: str,
        text: str,
        ts: str | None = None,
        bot_id: str | None = None,
        subtype: str | None = None,
        thread_ts: str | None = None,
    ) -> JSON:
        """A `message` event (build it, then `await driver.event(...)`)."""
        cid = self.emulator.resolve_channel(channel, create=True)
        ts = ts or self.emulator.new_ts()
        event: JSON = {
            "type": "message",
            "channel": cid,
            "user": user,
            "text": text,
            "ts": ts,
            "event_ts": ts,
            "channel_type": self._channel_type(cid),
            "team": self.emulator.team_id,
        }
        if bot_id:
            event["bot_id"] = bot_id
        else:
            event["client_msg_id"] = str(uuid.uuid4())
        if subtype:
            event["subtype"] = subtype
        if thread_ts:
            event["thread_ts"] = thread_ts
        return event

    def reaction_event(self, user: str, reaction: str, channel: str, ts: str) -> JSON:
        cid = self.emulator.resolve_channel(channel, create=True)
        item_user = self.emulator.bot_user_id if self.emulator.find_message(cid, ts) else None
        event: JSON = {
            "type": "reaction_added",
            "user": user,
            "reaction": reaction,
            "item": {"type": "message", "channel": cid, "ts": ts},
            "event_ts": self.emulator.new_ts(),
        }
        if item_user:
            event["item_user"] = item_user
        return event

    def member_joined_event(self, user: str, channel: str, inviter: str | None = None) -> JSON:
        """A `member_joined_channel` event; the emulator's member list is updated too."""
        emu = self.emulator
        cid = emu.resolve_channel(channel, create=True)
        members = emu.channels[cid]["members"]
        if user not in members:
            members.append(user)
        event: JSON = {
            "type": "member_joined_channel",
            "user": user,
            "channel": cid,
            "channel_type": "G" if emu.channels[cid].get("is_private") else "C",
            "team": emu.team_id,
            "event_ts": emu.new_ts(),
        }
        if inviter:
            event["inviter"] = inviter
        return event

    def app_home_opened(self, user: str) -> JSON:
        emu = self.emulator
        event: JSON = {
            "type": "app_home_opened",
            "user": user,
            "channel": emu.dm_channel(user),
            "tab": "home",
            "event_ts": emu.new_ts(),
        }
        if user in emu.home_views:
            event["view"] = public_view(emu.home_views[user])
        return event


def _act(element: JSON) -> JSON:
    """The action fields Slack sends for a clicked element."""
    return {k: element[k] for k in ("type", "text", "style", "url") if k in element}
