"""A Slack Web API emulator over real HTTP, close enough to Slack that the bot can't tell.

Point `AsyncWebClient(base_url=emulator.api_url)` at it. State is kept in plain JSON-like
dicts that tests read directly (`messages`, `ephemerals`, `views`, `home_views`, `calls`…).
"""

from __future__ import annotations

import asyncio
import base64
import itertools
import json
import math
import re
import secrets
import time
from collections import deque
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from zoneinfo import ZoneInfo

from aiohttp import web
from slack_sdk.errors import SlackObjectFormationError
from slack_sdk.models.blocks import Block
from slack_sdk.models.views import View

from .socket_mode import SocketModeEmulator

JSON = dict[str, Any]

MESSAGE_BLOCKS_MAX = 50
VIEW_BLOCKS_MAX = 100
TEXT_MAX = 40_000
MODAL_STACK_MAX = 3
RESPONSE_URL_USES = 5
_ID = re.compile(r"^[CGDUW][A-Z0-9]{2,}$")
_JSON_FIELDS = ("blocks", "attachments", "view", "metadata")
_PRIVATE_VIEW_KEYS = ("user", "stack")
_PRIVATE_MESSAGE_KEYS = ("channel", "updated", "via", "is_ephemeral")
_PARSE_ERRORS = (SlackObjectFormationError, TypeError, ValueError, KeyError, AttributeError)


class SlackError(Exception):
    """An API error answered as `{"ok": false, "error": ...}` (HTTP 200, like Slack)."""

    def __init__(self, error: str, **extra: Any) -> None:
        super().__init__(error)
        self.error = error
        self.extra = extra

    def body(self) -> JSON:
        return {"ok": False, "error": self.error, **self.extra}


@dataclass
class _RateLimit:
    per_channel_per_second: float | None
    per_minute: int | None
    retry_after: int
    last: dict[str, float] = field(default_factory=dict)
    window: deque[float] = field(default_factory=deque)


def public_message(msg: JSON) -> JSON:
    """A stored message as Slack shows it in API answers and interaction payloads."""
    out = {k: v for k, v in msg.items() if k not in _PRIVATE_MESSAGE_KEYS and v is not None}
    if not out.get("blocks"):
        out.pop("blocks", None)
    return out


def public_view(view: JSON) -> JSON:
    """A stored view without the emulator's bookkeeping keys."""
    return {k: v for k, v in view.items() if k not in _PRIVATE_VIEW_KEYS}


def texts(obj: Any) -> Iterator[str]:
    """Every string under a "text" key, recursively (to search block content)."""
    if isinstance(obj, dict):
        for key, value in obj.items():
            if key == "text" and isinstance(value, str):
                yield value
            else:
                yield from texts(value)
    elif isinstance(obj, list):
        for item in obj:
            yield from texts(item)


def truthy(value: Any) -> bool:
    return value is True or (isinstance(value, str) and value.lower() in ("true", "1"))


async def read_params(request: web.Request) -> JSON:
    """Query string plus a JSON or form body; JSON-encoded form fields are decoded."""
    params: JSON = dict(request.query)
    if request.can_read_body:
        if request.content_type == "application/json":
            try:
                body = await request.json()
            except ValueError:
                body = None
            if isinstance(body, dict):
                params.update(body)
        else:
            form = await request.post()
            params.update({k: v for k, v in form.items() if isinstance(v, str)})
    for key in _JSON_FIELDS:
        value = params.get(key)
        if isinstance(value, str) and value.strip()[:1] in ("[", "{"):
            try:
                params[key] = json.loads(value)
            except ValueError:
                pass
    return {k: v for k, v in params.items() if v is not None}


class SlackEmulator:
    """The Slack Web API (`/api/<method>`) and response URLs (`/response/<id>`)."""

    def __init__(
        self,
        bot_token: str = "xoxb-test",
        team_id: str = "T0TEAM",
        bot_user_id: str = "U0BOT",
        bot_id: str = "B0BOT",
        *,
        app_id: str = "A0FLOWBOT",
        team_domain: str = "flowbot-test",
        auto_users: bool = True,
        auto_channels: bool = True,
        latency: float = 0.0,
        trigger_ttl: float = 3.0,
    ) -> None:
        self.bot_token = bot_token
        self.team_id = team_id
        self.bot_user_id = bot_user_id
        self.bot_id = bot_id
        self.app_id = app_id
        self.team_domain = team_domain
        self.auto_users = auto_users
        self.auto_channels = auto_channels
        self.latency = latency
        self.trigger_ttl = trigger_ttl
        self.app = web.Application()
        self.socket_mode = SocketModeEmulator(self)  # apps.connections.open, the WebSocket
        self.socket_mode.mount(self.app)
        # OAuth v2 and the other workspaces it hosts (emulator/oauth.py).
        from emulator.oauth import OAuthEmulator

        self.oauth = OAuthEmulator(self)
        self.oauth.mount(self.app)
        self.app.router.add_route("*", "/api/{method}", self._handle_api)
        self.app.router.add_post("/response/{rid}", self._handle_response_url)
        self._runner: web.AppRunner | None = None
        self._host = "127.0.0.1"
        self._port = 0
        self._seq = itertools.count(1)
        self._last_us = 0
        self.users: dict[str, JSON] = {}
        self.channels: dict[str, JSON] = {}
        self.usergroups: dict[str, JSON] = {}
        self._methods: dict[str, Callable[[JSON], JSON]] = {
            "auth.test": self._auth_test,
            "chat.postMessage": self._chat_post_message,
            "chat.postEphemeral": self._chat_post_ephemeral,
            "chat.update": self._chat_update,
            "chat.delete": self._chat_delete,
            "chat.getPermalink": self._chat_get_permalink,
            "views.open": self._views_open,
            "views.push": self._views_push,
            "views.update": self._views_update,
            "views.publish": self._views_publish,
            "users.info": lambda p: {"user": self.get_user(p.get("user"))},
            "users.lookupByEmail": self._users_lookup_by_email,
            "conversations.open": self._conversations_open,
            "conversations.info": self._conversations_info,
            "conversations.members": self._conversations_members,
            "conversations.history": self._conversations_history,
            "usergroups.users.list": self._usergroups_users_list,
        }
        # Channels, members, topics and reactions (emulator/conversations.py).
        from emulator.conversations import ConversationMethods

        self.conversations = ConversationMethods(self)
        self._methods.update(self.conversations.methods())
        self.add_user(bot_user_id, "flowbot", is_bot=True)
        self.reset()

    # ---------------------------------------------------------------- lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        self._runner = web.AppRunner(self.app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, host, port)
        await site.start()
        self._host = "127.0.0.1" if host in ("", "0.0.0.0") else host
        self._port = self._runner.addresses[0][1]

    async def stop(self) -> None:
        await self.socket_mode.close()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None

    @property
    def base_url(self) -> str:
        return f"http://{self._host}:{self._port}/"

    @property
    def api_url(self) -> str:
        return self.base_url + "api/"

    def reset(self) -> None:
        """Forget messages, views, calls, triggers and limits; keep users/channels/groups."""
        self.messages: dict[str, list[JSON]] = {}
        self.ephemerals: list[JSON] = []
        self.views: dict[str, JSON] = {}
        self.home_views: dict[str, JSON] = {}
        self.response_url_posts: list[JSON] = []
        self.calls: list[tuple[str, JSON]] = []
        self._token = self.bot_token
        self.rate_limited_count = 0
        self._rate_limits: dict[str, _RateLimit] = {}
        self._failures: dict[str, list[int]] = {}
        self._triggers: dict[str, JSON] = {}
        self._responses: dict[str, JSON] = {}
        self._stacks: dict[str, list[str]] = {}

    # ---------------------------------------------------------------- directory

    def add_user(
        self,
        user_id: str,
        name: str | None = None,
        is_admin: bool = False,
        is_owner: bool = False,
        is_bot: bool = False,
        *,
        real_name: str | None = None,
        email: str | None = None,
        tz: str = "America/Los_Angeles",
    ) -> JSON:
        name = name or user_id.lower()
        real = real_name or name.replace(".", " ").title()
        offset = datetime.now(ZoneInfo(tz)).utcoffset()
        user: JSON = {
            "id": user_id,
            "team_id": self.team_id,
            "name": name,
            "real_name": real,
            "deleted": False,
            "is_admin": is_admin or is_owner,
            "is_owner": is_owner,
            "is_primary_owner": False,
            "is_restricted": False,
            "is_ultra_restricted": False,
            "is_bot": is_bot,
            "is_app_user": False,
            "tz": tz,
            "tz_offset": int(offset.total_seconds()) if offset else 0,
            "profile": {"real_name": real, "display_name": name, "email": email},
        }
        self.users[user_id] = user
        return user

    def get_user(self, user_id: Any) -> JSON:
        """A user as `users.info` answers it; unknown → SlackError("user_not_found")."""
        if not isinstance(user_id, str):
            raise SlackError("user_not_found")
        user = self.users.get(user_id)
        if user is None:
            if not (self.auto_users and _ID.match(user_id) and user_id[0] in "UW"):
                raise SlackError("user_not_found")
            user = self.add_user(user_id)
        return user

    def add_channel(
        self,
        channel_id: str,
        name: str,
        members: list[str] | None = None,
        *,
        is_private: bool = False,
    ) -> JSON:
        channel: JSON = {
            "id": channel_id,
            "name": name.lstrip("#"),
            "is_channel": not is_private,
            "is_group": is_private,
            "is_im": False,
            "is_mpim": False,
            "is_private": is_private,
            "is_archived": False,
            "is_member": True,
            "created": int(time.time()),
            "members": list(members or []),
        }
        self.channels[channel_id] = channel
        return channel

    def set_channel_members(self, channel_id: str, members: list[str]) -> None:
        self.channels[channel_id]["members"] = list(members)

    def add_usergroup(self, group_id: str, handle: str, users: list[str] | None = None) -> JSON:
        group: JSON = {
            "id": group_id,
            "team_id": self.team_id,
            "handle": handle,
            "name": handle,
            "users": list(users or []),
        }
        self.usergroups[group_id] = group
        return group

    def set_usergroup_users(self, group_id: str, users: list[str]) -> None:
        self.usergroups[group_id]["users"] = list(users)

    def dm_channel(self, user: str) -> str:
        """The stable D… channel id of the bot's DM with `user`."""
        cid = "D" + user[1:]
        if cid not in self.channels:
            self.channels[cid] = {
                "id": cid,
                "is_im": True,
                "is_channel": False,
                "is_private": True,
                "is_member": True,
                "user": user,
                "created": int(time.time()),
                "members": [user, self.bot_user_id],
            }
        return cid

    def resolve_channel(self, ref: Any, *, create: bool = False) -> str:
        """Channel id for a C…/G…/D… id, `#name`/`name`, or a user id (their DM)."""
        if not isinstance(ref, str) or not ref.strip():
            raise SlackError("channel_not_found")
        if _ID.match(ref):
            if ref[0] in "UW":
                if ref not in self.users and not self.auto_users:
                    raise SlackError("channel_not_found")
                return self.dm_channel(ref)
            if ref in self.channels:
                return ref
            if ref[0] == "D" and ("U" + ref[1:] in self.users or self.auto_users):
                return self.dm_channel("U" + ref[1:])
            if create and self.auto_channels and ref[0] in "CG":
                return self.add_channel(ref, ref.lower(), is_private=ref[0] == "G")["id"]
            raise SlackError("channel_not_found")
        name = ref.lstrip("#")
        for channel in self.channels.values():
            if channel.get("name") == name:
                return str(channel["id"])
        if create and self.auto_channels:
            base = "C0" + re.sub(r"[^A-Z0-9]", "", name.upper())[:12]
            cid, n = base, 1
            while cid in self.channels:
                n += 1
                cid = f"{base}{n}"
            return self.add_channel(cid, name)["id"]
        raise SlackError("channel_not_found")

    # ---------------------------------------------------------------- test helpers

    def messages_in(self, channel_or_name: str) -> list[JSON]:
        try:
            return self.messages.get(self.resolve_channel(channel_or_name), [])
        except SlackError:
            return []

    def find_messages(self, text_contains: str) -> list[JSON]:
        """Channel messages whose text or block text contains the string."""
        return [
            m
            for msgs in self.messages.values()
            for m in msgs
            if text_contains in m["text"] or any(text_contains in t for t in texts(m["blocks"]))
        ]

    def channel_of(self, ts: Any) -> str | None:
        """The channel of a stored message or ephemeral, by ts."""
        for channel, msgs in self.messages.items():
            if any(m["ts"] == ts for m in msgs):
                return channel
        return next((e["channel"] for e in self.ephemerals if e["ts"] == ts), None)

    def last_ephemeral(self, user: str) -> JSON | None:
        return next((e for e in reversed(self.ephemerals) if e["user"] == user), None)

    def new_ts(self) -> str:
        """A unique, increasing Slack timestamp ("1700000000.000100")."""
        self._last_us = max(time.time_ns() // 1000, self._last_us + 1)
        return f"{self._last_us // 1_000_000}.{self._last_us % 1_000_000:06d}"

    def issue_trigger_id(self, user: str) -> str:
        """A trigger id for `user`: views.open/push accept it once, within `trigger_ttl`."""
        tid = f"{next(self._seq)}.{int(time.time())}.{secrets.token_hex(16)}"
        self._triggers[tid] = {"user": user, "issued": time.monotonic(), "used": False}
        return tid

    def new_response_url(self, user: str, channel: str, message_ts: str | None = None) -> str:
        rid = f"R{next(self._seq):06d}{secrets.token_hex(6)}"
        self._responses[rid] = {
            "user": user,
            "channel": channel,
            "message_ts": message_ts,
            "uses": 0,
            "last_ts": None,
        }
        return f"{self.base_url}response/{rid}"

    # ---------------------------------------------------------------- knobs

    def set_rate_limit(
        self,
        method: str,
        per_channel_per_second: float | None = None,
        per_minute: int | None = None,
        retry_after: int = 1,
    ) -> None:
        """Answer HTTP 429 + Retry-After past the limit (None for both: remove the limit)."""
        if per_channel_per_second is None and per_minute is None:
            self._rate_limits.pop(method, None)
        else:
            self._rate_limits[method] = _RateLimit(per_channel_per_second, per_minute, retry_after)

    def fail_next(self, method: str, status: int = 500, count: int = 1) -> None:
        """The next `count` calls of `method` answer HTTP `status` (no side effects)."""
        self._failures[method] = [status, count]

    # ---------------------------------------------------------------- HTTP

    async def _handle_api(self, request: web.Request) -> web.Response:
        method = request.match_info["method"]
        params = await read_params(request)
        self.calls.append((method, params))
        if self.latency:
            await asyncio.sleep(self.latency)
        failure = self._failures.get(method)
        if failure and failure[1] > 0:
            failure[1] -= 1
            if failure[0] == 429:
                self.rate_limited_count += 1
                return _ratelimited(1)
            error = "fatal_error" if failure[0] >= 500 else "request_failed"
            return web.json_response({"ok": False, "error": error}, status=failure[0])
        handler = self._methods.get(method)
        if handler is None:
            return web.json_response({"ok": False, "error": "unknown_method"})
        try:
            self._check_auth(request, params, method)
            wait = self._rate_limit_wait(method, params)
            if wait:
                self.rate_limited_count += 1
                return _ratelimited(wait)
            return web.json_response({"ok": True, **handler(params)})
        except SlackError as exc:
            return web.json_response(exc.body())

    async def _handle_response_url(self, request: web.Request) -> web.Response:
        rid = request.match_info["rid"]
        body = await read_params(request)
        rec = self._responses.get(rid)
        self.response_url_posts.append(
            {**body, "id": rid, "user": rec and rec["user"], "channel": rec and rec["channel"]}
        )
        if self.latency:
            await asyncio.sleep(self.latency)
        if rec is None:
            return web.json_response({"ok": False, "error": "expired_url"}, status=404)
        if rec["uses"] >= RESPONSE_URL_USES:
            return web.json_response({"ok": False, "error": "used_url"}, status=404)
        rec["uses"] += 1
        try:
            self._apply_response(rec, body, "response_url")
        except SlackError as exc:
            return web.json_response(exc.body(), status=400)
        return web.json_response({"ok": True})

    def deliver_response(self, response_url: str, body: JSON, *, via: str = "ack") -> None:
        """Apply a body as Slack would for this response URL (used for slash-command acks)."""
        rid = response_url.rstrip("/").rsplit("/", 1)[-1]
        self._apply_response(self._responses[rid], body, via)

    def _check_auth(self, request: web.Request, params: JSON, method: str = "") -> None:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else params.get("token")
        if not token:
            raise SlackError("not_authed")
        error = self.oauth.check_token(method, str(token))  # any hosted workspace's token
        if error:
            raise SlackError(error)
        self._token = str(token)

    def _rate_limit_wait(self, method: str, params: JSON) -> int:
        rule = self._rate_limits.get(method)
        if rule is None:
            return 0
        now = time.monotonic()
        ref = params.get("channel", "")
        try:
            key = self.resolve_channel(ref) if ref else ""
        except SlackError:
            key = str(ref)
        wait = 0.0
        last = rule.last.get(key)
        if rule.per_channel_per_second and last is not None:
            wait = max(wait, 1.0 / rule.per_channel_per_second - (now - last))
        if rule.per_minute is not None:
            while rule.window and now - rule.window[0] >= 60:
                rule.window.popleft()
            if len(rule.window) >= rule.per_minute:
                wait = max(wait, 60 - (now - rule.window[0]))
        if wait > 0:
            return max(rule.retry_after, math.ceil(wait), 1)
        rule.last[key] = now
        rule.window.append(now)
        return 0

    # ---------------------------------------------------------------- validation

    def _block_errors(self, blocks: Any, limit: int, pointer: str) -> list[str]:
        if not isinstance(blocks, list) or not all(isinstance(b, dict) for b in blocks):
            return [f"must be an array of objects [json-pointer:{pointer}]"]
        errors = []
        if len(blocks) > limit:
            errors.append(f"must be less than {limit + 1} items [json-pointer:{pointer}]")
        block_ids: set[str] = set()
        for i, raw in enumerate(blocks):
            where = f"[json-pointer:{pointer}/{i}]"
            try:
                block = Block.parse(raw)
                if block is None:
                    errors.append(f"unsupported type: {raw.get('type')} {where}")
                    continue
                block.validate_json()
                block.to_dict()  # validates nested elements and text objects too
            except _PARSE_ERRORS as exc:
                errors.append(f"{exc} {where}")
            block_id = raw.get("block_id")
            if block_id is not None:
                if block_id in block_ids:
                    errors.append(f"duplicate block_id {block_id!r} {where}")
                block_ids.add(block_id)
            action_ids = [e.get("action_id") for e in elements(raw) if e.get("action_id")]
            if len(action_ids) != len(set(action_ids)):
                errors.append(f"duplicate action_id in block {where}")
        return errors

    def _message_blocks(self, blocks: Any) -> list[JSON]:
        errors = self._block_errors(blocks, MESSAGE_BLOCKS_MAX, "/blocks")
        if errors:
            metadata = {"messages": [f"[ERROR] {e}" for e in errors]}
            raise SlackError("invalid_blocks", errors=errors, response_metadata=metadata)
        return [self._with_ids(dict(b)) for b in blocks]

    def _with_ids(self, block: JSON) -> JSON:
        """Like Slack, give every block a block_id and every element an action_id."""
        block.setdefault("block_id", secrets.token_urlsafe(3))
        key = _ELEMENT_KEYS.get(block.get("type", ""))
        value = block.get(key) if key else None
        if key and isinstance(value, (list, dict)):
            items = [
                {**e, "action_id": e.get("action_id") or secrets.token_urlsafe(3)}
                if isinstance(e, dict) and _interactive(e)
                else e
                for e in (value if isinstance(value, list) else [value])
            ]
            block[key] = items if isinstance(value, list) else items[0]
        return block

    def _content(self, p: JSON) -> tuple[str, list[JSON] | None]:
        """Validated text and blocks of a message body; blocks None when absent."""
        text = p.get("text")
        text = "" if text is None else str(text)
        blocks = p.get("blocks")
        if not text and not blocks and not p.get("attachments"):
            raise SlackError("no_text")
        if len(text) > TEXT_MAX:
            raise SlackError("msg_too_long")
        if blocks is None:
            return text, None
        return text, self._message_blocks(blocks)

    def _check_view(self, raw: Any, kind: str) -> JSON:
        if isinstance(raw, str):
            try:
                raw = json.loads(raw)
            except ValueError:
                raw = None
        if not isinstance(raw, dict):
            msg = "[ERROR] missing required field: view"
            raise SlackError("invalid_arguments", response_metadata={"messages": [msg]})
        errors = []
        if raw.get("type") != kind:
            errors.append(f"must be '{kind}' [json-pointer:/view/type]")
        blocks = raw.get("blocks")
        if kind == "modal":
            if not raw.get("title"):
                errors.append("missing required field: title [json-pointer:/view]")
            has_input = isinstance(blocks, list) and any(
                isinstance(b, dict) and b.get("type") == "input" for b in blocks
            )
            if has_input and not raw.get("submit"):
                errors.append("submit is required when an input block is present")
        try:
            View(**raw).to_dict()
        except _PARSE_ERRORS as exc:
            errors.append(f"{exc} [json-pointer:/view]")
        errors += self._block_errors(blocks, VIEW_BLOCKS_MAX, "/view/blocks")
        if errors:
            messages = [f"[ERROR] {e}" for e in errors]
            raise SlackError("invalid_arguments", response_metadata={"messages": messages})
        return {**raw, "blocks": [self._with_ids(dict(b)) for b in blocks or []]}

    # ---------------------------------------------------------------- messages

    def add_message(self, channel: str, text: str, blocks: Any, **extra: Any) -> JSON:
        """Store a message in `channel` as posted by the bot (or by `user=`, with
        `bot_id=None`, as a person's message): what chat.postMessage and the sandbox use."""
        msg: JSON = {
            "type": "message",
            "channel": channel,
            "ts": self.new_ts(),
            "text": text,
            "blocks": blocks or [],
            "user": self.bot_user_id,
            "bot_id": self.bot_id,
            "app_id": self.app_id,
            "team": self.team_id,
            "thread_ts": extra.pop("thread_ts", None),
            "metadata": extra.pop("metadata", None),
            "updated": 0,
            "via": extra.pop("via", "api"),
            **extra,
        }
        self.messages.setdefault(channel, []).append(msg)
        return msg

    def add_ephemeral(self, channel: str, user: str, text: str, blocks: Any, **extra: Any) -> JSON:
        """Store a message in `channel` that only `user` sees ("Only visible to you")."""
        eph: JSON = {
            "channel": channel,
            "user": user,
            "text": text,
            "blocks": blocks or [],
            "ts": self.new_ts(),
            "thread_ts": extra.pop("thread_ts", None),
            "is_ephemeral": True,
            "updated": 0,
            "via": extra.pop("via", "api"),
            **extra,
        }
        self.ephemerals.append(eph)
        return eph

    def find_message(self, channel: str, ts: Any) -> JSON | None:
        return next((m for m in self.messages.get(channel, []) if m["ts"] == ts), None)

    def _edit(self, msg: JSON, p: JSON, text: str, blocks: Any, replace: bool = False) -> None:
        """chat.update keeps what isn't given; a response_url `replace_original` replaces all."""
        if "text" in p or replace:
            msg["text"] = text
        if blocks is not None or replace:
            msg["blocks"] = blocks or []
        for key in ("metadata", "attachments"):
            if key in p:
                msg[key] = p[key]
        msg["updated"] += 1
        msg["edited"] = {"user": self.bot_user_id, "ts": self.new_ts()}

    def _apply_response(self, rec: JSON, body: JSON, via: str) -> None:
        channel, target = rec["channel"], rec["message_ts"] or rec["last_ts"]
        original = self.find_message(channel, target) if target else None
        if original is None and target:
            original = next((e for e in self.ephemerals if e["ts"] == target), None)
        if truthy(body.get("delete_original")):
            if original is not None and original.get("is_ephemeral"):
                self.ephemerals.remove(original)
            elif original is not None:
                self.messages[channel].remove(original)
            return
        text, blocks = self._content(body)
        if truthy(body.get("replace_original")) and original is not None:
            self._edit(original, body, text, blocks, replace=True)
        elif body.get("response_type") == "in_channel":
            self.add_message(channel, text, blocks, thread_ts=body.get("thread_ts"), via=via)
        else:
            eph = self.add_ephemeral(channel, rec["user"], text, blocks, via=via)
            if rec["message_ts"] is None:
                rec["last_ts"] = eph["ts"]

    def _auth_test(self, p: JSON) -> JSON:
        other = self.oauth.auth_test(self._token)  # another hosted workspace's token
        if other is not None:
            return other
        return {
            "url": f"https://{self.team_domain}.slack.com/",
            "team": self.team_domain,
            "user": self.users[self.bot_user_id]["name"],
            "team_id": self.team_id,
            "user_id": self.bot_user_id,
            "bot_id": self.bot_id,
            "is_enterprise_install": False,
        }

    def _chat_post_message(self, p: JSON) -> JSON:
        channel = self.resolve_channel(p.get("channel"), create=True)
        text, blocks = self._content(p)
        extra = {k: p[k] for k in ("attachments",) if k in p}
        if p.get("thread_ts") and truthy(p.get("reply_broadcast")):
            extra["reply_broadcast"] = True
        msg = self.add_message(
            channel, text, blocks, thread_ts=p.get("thread_ts"), metadata=p.get("metadata"), **extra
        )
        return {"channel": channel, "ts": msg["ts"], "message": public_message(msg)}

    def _chat_post_ephemeral(self, p: JSON) -> JSON:
        channel = self.resolve_channel(p.get("channel"), create=True)
        user = self.get_user(p.get("user"))["id"]
        text, blocks = self._content(p)
        eph = self.add_ephemeral(channel, user, text, blocks, thread_ts=p.get("thread_ts"))
        return {"message_ts": eph["ts"]}

    def _chat_update(self, p: JSON) -> JSON:
        channel = self.resolve_channel(p.get("channel"))
        msg = self.find_message(channel, p.get("ts"))
        if msg is None:
            raise SlackError("message_not_found")
        if msg.get("user") != self.bot_user_id:
            raise SlackError("cant_update_message")
        text, blocks = self._content(p)
        self._edit(msg, p, text, blocks)
        message = public_message(msg)
        return {"channel": channel, "ts": msg["ts"], "text": msg["text"], "message": message}

    def _chat_delete(self, p: JSON) -> JSON:
        channel = self.resolve_channel(p.get("channel"))
        msg = self.find_message(channel, p.get("ts"))
        if msg is None:
            raise SlackError("message_not_found")
        self.messages[channel].remove(msg)
        return {"channel": channel, "ts": msg["ts"]}

    def _chat_get_permalink(self, p: JSON) -> JSON:
        channel = self.resolve_channel(p.get("channel"))
        ts = p.get("message_ts")
        if self.find_message(channel, ts) is None:
            raise SlackError("message_not_found")
        path = f"archives/{channel}/p{str(ts).replace('.', '')}"
        link = f"https://{self.team_domain}.slack.com/{path}"
        return {"channel": channel, "permalink": link}

    # ---------------------------------------------------------------- views

    def _consume_trigger(self, trigger_id: Any) -> str:
        trigger = self._triggers.get(trigger_id) if isinstance(trigger_id, str) else None
        if trigger is None:
            raise SlackError("invalid_trigger_id")
        if trigger["used"]:
            raise SlackError("exchanged_trigger_id")
        if time.monotonic() - trigger["issued"] > self.trigger_ttl:
            raise SlackError("expired_trigger_id")
        trigger["used"] = True
        return str(trigger["user"])

    def _new_hash(self) -> str:
        return f"{int(time.time())}.{secrets.token_hex(4)}"

    def _set_view_content(self, rec: JSON, view: JSON) -> None:
        external_id = view.get("external_id") or ""
        if external_id and any(
            v["external_id"] == external_id and v["id"] != rec["id"] for v in self._all_views()
        ):
            raise SlackError("duplicate_external_id")
        for key in ("type", "title", "submit", "close", "blocks"):
            rec[key] = view.get(key)
        rec["callback_id"] = view.get("callback_id") or ""
        rec["private_metadata"] = view.get("private_metadata") or ""
        rec["external_id"] = external_id
        rec["clear_on_close"] = bool(view.get("clear_on_close"))
        rec["notify_on_close"] = bool(view.get("notify_on_close"))
        rec["hash"] = self._new_hash()
        rec.setdefault("state", {"values": {}})

    def _new_view(self, view: JSON, user: str, root: str | None = None) -> JSON:
        vid = f"V{next(self._seq):08X}"
        rec: JSON = {"id": vid, "team_id": self.team_id, "external_id": ""}
        self._set_view_content(rec, view)
        rec.update(
            root_view_id=root or vid,
            previous_view_id=None,
            app_id=self.app_id,
            app_installed_team_id=self.team_id,
            bot_id=self.bot_id,
            user=user,
        )
        return rec

    def _all_views(self) -> list[JSON]:
        return [*self.views.values(), *self.home_views.values()]

    def open_view(self, user: str, view: Any) -> JSON:
        """Open a validated modal as a new stack for `user` (closing any open one)."""
        view = self._check_view(view, "modal")
        for vid in list(self._stacks.get(user, [])):
            self.views.pop(vid, None)
        rec = self._new_view(view, user)
        stack = [rec["id"]]
        self._stacks[user] = rec["stack"] = stack
        self.views[rec["id"]] = rec
        return rec

    def push_view(self, user: str, view: Any) -> JSON:
        stack = self._stacks.get(user)
        if not stack:
            return self.open_view(user, view)
        if len(stack) >= MODAL_STACK_MAX:
            raise SlackError("push_limit_reached")
        rec = self._new_view(self._check_view(view, "modal"), user, root=stack[0])
        rec["previous_view_id"] = stack[-1]
        rec["stack"] = stack
        stack.append(rec["id"])
        self.views[rec["id"]] = rec
        return rec

    def top_modal(self, user: str) -> JSON | None:
        """The modal `user` sees now: the top of their stack, None when none is open."""
        stack = self._stacks.get(user) or []
        return self.views.get(stack[-1]) if stack else None

    def update_view(self, view_id: str, view: Any, view_hash: str | None = None) -> JSON:
        rec = next((v for v in self._all_views() if v["id"] == view_id), None)
        if rec is None:
            raise SlackError("not_found")
        if view_hash and view_hash != rec["hash"]:
            raise SlackError("hash_conflict")
        self._set_view_content(rec, self._check_view(view, rec["type"]))
        return rec

    def close_view(self, view_id: str, *, clear: bool = False) -> list[str]:
        """Close the top view of its stack (`clear`: the whole stack); returns closed ids."""
        rec = self.views.get(view_id)
        if rec is None:
            return []
        stack: list[str] = rec["stack"]
        closed = list(stack) if clear else stack[stack.index(view_id) :]
        for vid in closed:
            stack.remove(vid)
            self.views.pop(vid, None)
        if not stack:
            self._stacks.pop(rec["user"], None)
        return closed

    def _views_open(self, p: JSON) -> JSON:
        user = self._consume_trigger(p.get("trigger_id"))
        return {"view": public_view(self.open_view(user, p.get("view")))}

    def _views_push(self, p: JSON) -> JSON:
        user = self._consume_trigger(p.get("trigger_id"))
        return {"view": public_view(self.push_view(user, p.get("view")))}

    def _views_update(self, p: JSON) -> JSON:
        view_id, external_id = p.get("view_id"), p.get("external_id")
        if external_id and not view_id:
            found = [v["id"] for v in self._all_views() if v["external_id"] == external_id]
            view_id = found[0] if found else None
        elif not view_id:
            raise SlackError("invalid_arguments")
        if view_id is None:
            raise SlackError("not_found")
        return {"view": public_view(self.update_view(view_id, p.get("view"), p.get("hash")))}

    def _views_publish(self, p: JSON) -> JSON:
        user = self.get_user(p.get("user_id"))["id"]
        view = self._check_view(p.get("view"), "home")
        rec = self.home_views.get(user)
        if rec is None:
            rec = self.home_views[user] = self._new_view(view, user)
        else:
            if p.get("hash") and p["hash"] != rec["hash"]:
                raise SlackError("hash_conflict")
            self._set_view_content(rec, view)
        return {"view": public_view(rec)}

    # ---------------------------------------------------------------- directory methods

    def _users_lookup_by_email(self, p: JSON) -> JSON:
        email = str(p.get("email", "")).lower()
        for user in self.users.values():
            if email and (user["profile"].get("email") or "").lower() == email:
                return {"user": user}
        raise SlackError("users_not_found")

    def _conversations_open(self, p: JSON) -> JSON:
        users = p.get("users") or []
        users = users.split(",") if isinstance(users, str) else list(users)
        if p.get("channel"):
            return {"channel": {"id": self.resolve_channel(p["channel"])}}
        if not users:
            raise SlackError("users_list_not_supplied")
        for user in users:
            self.get_user(user.strip())
        if len(users) == 1:
            return {"channel": {"id": self.dm_channel(users[0].strip())}}
        cid = "G" + "".join(sorted(u.strip()[1:] for u in users))[:16]
        if cid not in self.channels:
            members = [*sorted(u.strip() for u in users), self.bot_user_id]
            mpim = self.add_channel(cid, "mpdm-" + cid.lower(), members, is_private=True)
            mpim.update(is_mpim=True, is_group=False)
        return {"channel": {"id": cid}}

    def _conversations_info(self, p: JSON) -> JSON:
        channel = self.channels[self.resolve_channel(p.get("channel"))]
        info = {k: v for k, v in channel.items() if k != "members"}
        if truthy(p.get("include_num_members")):
            info["num_members"] = len(channel["members"])
        return {"channel": info}

    def _conversations_members(self, p: JSON) -> JSON:
        members = self.channels[self.resolve_channel(p.get("channel"))]["members"]
        try:
            limit = min(max(int(p.get("limit") or 100), 1), 1000)
            cursor = p.get("cursor")
            offset = int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0
        except (ValueError, IndexError) as exc:
            raise SlackError("invalid_cursor") from exc
        end = offset + limit
        more = end < len(members)
        next_cursor = base64.b64encode(f"offset:{end}".encode()).decode() if more else ""
        return {"members": members[offset:end], "response_metadata": {"next_cursor": next_cursor}}

    def _conversations_history(self, p: JSON) -> JSON:
        """Slack's conversations.history: a channel's messages (not thread replies), newest
        first, between `oldest` and `latest`; message metadata only with
        `include_all_metadata`; `limit` (default 100, at most 999) and a cursor."""
        channel = self.resolve_channel(p.get("channel"))
        try:
            limit = min(max(int(p.get("limit") or 100), 1), 999)
            oldest = float(p.get("oldest") or 0)
            latest = float(p.get("latest") or "inf")
            cursor = p.get("cursor")
            offset = int(base64.b64decode(cursor).decode().split(":")[1]) if cursor else 0
        except (ValueError, IndexError) as exc:
            raise SlackError("invalid_arguments") from exc
        inclusive = str(p.get("inclusive") or "").lower() in ("1", "true")
        with_metadata = str(p.get("include_all_metadata") or "").lower() in ("1", "true")

        def wanted(msg: JSON) -> bool:
            ts = float(msg["ts"])
            if msg.get("thread_ts") not in (None, msg["ts"]):
                return False  # a reply in a thread
            if inclusive:
                return oldest <= ts <= latest
            return oldest < ts < latest

        found = [m for m in reversed(self.messages.get(channel, [])) if wanted(m)]
        page = found[offset : offset + limit]
        more = offset + limit < len(found)
        out = [public_message(m) for m in page]
        if not with_metadata:
            out = [{k: v for k, v in m.items() if k != "metadata"} for m in out]
        next_cursor = base64.b64encode(f"offset:{offset + limit}".encode()).decode() if more else ""
        return {
            "messages": out,
            "has_more": more,
            "response_metadata": {"next_cursor": next_cursor},
        }

    def _usergroups_users_list(self, p: JSON) -> JSON:
        group = self.usergroups.get(str(p.get("usergroup")))
        if group is None:
            raise SlackError("no_such_subteam")
        return {"users": list(group["users"])}


_ELEMENT_KEYS = {
    "actions": "elements",
    "context_actions": "elements",
    "section": "accessory",
    "input": "element",
}


def _interactive(element: JSON) -> bool:
    return "type" in element and element["type"] not in ("image", "mrkdwn", "plain_text")


def elements(block: JSON) -> list[JSON]:
    """Interactive elements of a block: actions elements, a section accessory, an input element."""
    key = _ELEMENT_KEYS.get(block.get("type", ""))
    value = block.get(key) if key else None
    items = value if isinstance(value, list) else [value]
    return [e for e in items if isinstance(e, dict) and _interactive(e)]


def _ratelimited(retry_after: int) -> web.Response:
    return web.json_response(
        {"ok": False, "error": "ratelimited"},
        status=429,
        headers={"Retry-After": str(retry_after)},
    )
