"""The sandbox: a local Slack in the browser (SPEC 16), served by the emulator's aiohttp app.

The page (`emulator/static/`, plain JavaScript and CSS, no build step) talks to a small JSON
API under `/sandbox/api/` and listens to `/sandbox/events` (server-sent events: a counter that
moves whenever the emulator's state changes). What a person does there is sent to the bot as
Slack sends it, signed, by the `SlackDriver`: slash commands, message and reaction events,
`block_actions`, `view_submission`, `view_closed`, `app_home_opened`.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import re
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import aiohttp
from aiohttp import web

from .driver import SlackDriver, _option, _state_value, state_values
from .server import JSON, SlackEmulator, SlackError, elements, public_view

STATIC = Path(__file__).resolve().parent / "static"
_CHANGING = ("/api/chat.", "/api/views.", "/api/conversations.", "/api/reactions.", "/response/")
_MENTION = re.compile(r"(?<![<\w&|^])([@#])([a-z0-9][a-z0-9._-]*)", re.IGNORECASE)


def seed(emu: SlackEmulator) -> None:
    """The sample workspace: people, channels (those the templates name), user groups."""
    emu.add_user("U0ALICE", "alice", real_name="Alice Martin")
    emu.add_user("U0BOB", "bob", real_name="Bob Chen")
    emu.add_user("U0CAROL", "carol", real_name="Carol Diaz")
    emu.add_user("U0DAVE", "dave", real_name="Dave Okafor")
    emu.add_user("U0MANAGER", "manager", real_name="Maria Manager")
    emu.add_user("U0ADMIN", "admin", is_admin=True, real_name="Ada Admin")
    everyone = ["U0ALICE", "U0BOB", "U0CAROL", "U0DAVE", "U0MANAGER", "U0ADMIN"]
    for cid, name in (
        ("C0GENERAL", "general"),
        ("C0FINANCE", "finance"),
        ("C0FINBOTS", "finance-bots"),
        ("C0DEPLOYS", "deploys"),
        ("C0SUPPORT", "support"),
        ("C0INCIDENTS", "incidents"),
        ("C0ALERTS", "alerts"),
        ("C0TEAM", "team"),
    ):
        emu.add_channel(cid, name, list(everyone))
    emu.add_usergroup("S0LEADS", "leads", ["U0BOB", "U0MANAGER"])
    emu.add_usergroup("S0RELEASE", "release", ["U0BOB", "U0CAROL"])


def escape_mentions(emu: SlackEmulator, text: str) -> str:
    """`@bob`, `@leads` and `#general` as Slack's client sends them: `<@U0BOB|bob>`,
    `<!subteam^S0LEADS|leads>`, `<#C0GENERAL|general>`; unknown names stay as typed."""

    def repl(match: re.Match[str]) -> str:
        sigil, name = match.group(1), match.group(2)
        lowered = name.lower().rstrip(".")
        rest = name[len(lowered) :]
        if sigil == "#":
            for channel in emu.channels.values():
                if channel.get("name") == lowered and not channel.get("is_im"):
                    return f"<#{channel['id']}|{lowered}>{rest}"
            return match.group(0)
        if lowered in ("here", "channel", "everyone"):
            return f"<!{lowered}>{rest}"
        for user in emu.users.values():
            if user["name"] == lowered:
                return f"<@{user['id']}|{lowered}>{rest}"
        for group in emu.usergroups.values():
            if group["handle"] == lowered:
                return f"<!subteam^{group['id']}|@{lowered}>{rest}"
        return match.group(0)

    return _MENTION.sub(repl, text)


def _element_at(blocks: list[JSON], block_id: str, action_id: str) -> JSON:
    for block in blocks:
        if str(block.get("block_id")) != block_id:
            continue
        for element in elements(block):
            if element.get("action_id") == action_id:
                return element
    raise LookupError(f"no element {action_id!r} in block {block_id!r}")


def action_fields(element: JSON, raw: Any) -> JSON:
    """The fields Slack sends for an element that was clicked or changed to `raw`."""
    kind = str(element.get("type", ""))
    act: JSON = {"type": kind}
    for key in ("text", "style", "url", "value"):
        if key in element:
            act[key] = element[key]
    if kind == "button":
        return act
    if kind == "overflow":
        act["selected_option"] = _option(element, str(raw))
        return act
    from .driver import _STATE_KEYS

    state_key = _STATE_KEYS.get(kind, ("value", ""))[0]
    act[state_key] = _state_value(element, raw, "action", False)
    return act


def form_state(view: JSON, raw: Any, *, strict: bool = False) -> dict[str, dict[str, JSON]]:
    """`view.state.values` from the page's {block_id: value}; an emptied text box is null."""
    inputs = (
        {str(k): v for k, v in (raw or {}).items() if v is not None}
        if isinstance(raw, dict)
        else {}
    )
    blank = {k for k, v in inputs.items() if v == ""}
    values = state_values(view, {k: v for k, v in inputs.items() if k not in blank}, strict=strict)
    for block_id in blank & set(values):
        for field in values[block_id].values():
            field["value"] = None
    return values


class Sandbox:
    """Routes of the page and its API on the emulator's app (call before `emu.start`)."""

    def __init__(self, emu: SlackEmulator, bot_url: str, signing_secret: str) -> None:
        self.emu = emu
        self.bot_url = bot_url.rstrip("/")
        self.driver = SlackDriver(self.bot_url + "/slack/events", signing_secret, emu)
        self.version = 0
        self.bot_failed: str | None = None
        self.sample_api_calls: list[JSON] = []
        self._changed = asyncio.Event()
        self._closing = False
        app = emu.app
        app.middlewares.append(self._watch)
        app.on_shutdown.append(self._on_shutdown)
        router = app.router
        router.add_get("/", self._index)
        router.add_static("/static/", STATIC)
        router.add_get("/sandbox/events", self._events)
        router.add_get("/sandbox/api/screen", self._screen)
        router.add_route("*", "/sandbox/sample-api/{path:.*}", self._sample_api)
        post_routes: dict[str, Callable[[JSON], Awaitable[JSON]]] = {
            "send": self._send,
            "action": self._action,
            "submit": self._submit,
            "close": self._close,
            "react": self._react,
            "home": self._home,
            "webhook": self._webhook,
        }
        for name, handler in post_routes.items():
            router.add_post(f"/sandbox/api/{name}", self._json_route(handler))

    # ---------------------------------------------------------------- live updates

    def bump(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = asyncio.Event()

    @web.middleware
    async def _watch(
        self, request: web.Request, handler: Callable[[web.Request], Awaitable[web.StreamResponse]]
    ) -> web.StreamResponse:
        try:
            return await handler(request)
        finally:
            if request.path.startswith(_CHANGING):
                self.bump()

    async def _on_shutdown(self, app: web.Application) -> None:
        self._closing = True
        self._changed.set()

    async def _events(self, request: web.Request) -> web.StreamResponse:
        response = web.StreamResponse(
            headers={"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
        )
        await response.prepare(request)
        seen = -1
        with contextlib.suppress(ConnectionError, asyncio.CancelledError):
            while not self._closing:
                if seen != self.version:
                    seen = self.version
                    await response.write(f"data: {seen}\n\n".encode())
                changed = self._changed
                with contextlib.suppress(asyncio.TimeoutError):
                    await asyncio.wait_for(changed.wait(), 15)
                if seen == self.version:
                    await response.write(b": keep-alive\n\n")
        return response

    # ---------------------------------------------------------------- page and reads

    async def _index(self, request: web.Request) -> web.StreamResponse:
        return web.FileResponse(STATIC / "index.html", headers={"Cache-Control": "no-cache"})

    def _user(self, params: Any) -> str:
        user = str(params.get("as") or "")
        if user not in self.emu.users or self.emu.users[user].get("is_bot"):
            raise web.HTTPBadRequest(text=f"unknown person {user!r}")
        return user

    def _message_view(self, msg: JSON) -> JSON:
        out = {
            k: msg.get(k)
            for k in ("ts", "text", "blocks", "user", "bot_id", "thread_ts", "channel")
        }
        out["edited"] = bool(msg.get("updated"))
        out["ephemeral"] = bool(msg.get("is_ephemeral"))
        out["broadcast"] = bool(msg.get("reply_broadcast"))
        out["reactions"] = {r["name"]: list(r["users"]) for r in msg.get("reactions") or []}
        return out

    def _directory(self, user: str) -> JSON:
        emu = self.emu
        people = [
            {"id": u["id"], "name": u["name"], "real_name": u["real_name"], "admin": u["is_admin"]}
            for u in emu.users.values()
            if not u.get("is_bot")
        ]
        channels = [
            {
                "id": c["id"],
                "name": c["name"],
                "private": bool(c.get("is_private")),
                "topic": (c.get("topic") or {}).get("value", ""),
            }
            for c in emu.channels.values()
            if not c.get("is_im")
            and not c.get("is_mpim")
            and not c.get("is_archived")
            and (not c.get("is_private") or user in c.get("members", []))
        ]
        groups = [
            {"id": g["id"], "handle": g["handle"], "users": g["users"]}
            for g in emu.usergroups.values()
        ]
        dms = [
            {"id": c["id"], "name": "flowbot", "unread": len(emu.messages.get(c["id"], []))}
            for c in emu.channels.values()
            if c.get("is_im") and c.get("user") == user
        ]
        return {
            "people": people,
            "channels": channels,
            "groups": groups,
            "dms": dms,
            "bot": {"id": emu.bot_user_id, "name": emu.users[emu.bot_user_id]["name"]},
        }

    async def _screen(self, request: web.Request) -> web.Response:
        """Everything the page shows for one person: directory, a channel, the modal, home."""
        emu, q = self.emu, request.query
        user = self._user(q)
        out: JSON = {"version": self.version, "me": user, **self._directory(user)}
        out["bot_failed"] = self.bot_failed
        channel = q.get("channel") or ""
        if channel:
            try:
                cid = emu.resolve_channel(channel)
            except SlackError:
                raise web.HTTPNotFound(text=f"no channel {channel}") from None
            msgs = [self._message_view(m) for m in emu.messages.get(cid, [])]
            msgs += [
                self._message_view(e)
                for e in emu.ephemerals
                if e["channel"] == cid and e["user"] == user
            ]
            msgs.sort(key=lambda m: float(m["ts"]))
            out["channel"] = {"id": cid, "messages": msgs}
        top = emu.top_modal(user)
        out["modal"] = public_view(top) if top else None
        home = emu.home_views.get(user)
        out["home"] = public_view(home) if home else None
        return web.json_response(out)

    async def _sample_api(self, request: web.Request) -> web.Response:
        """A stand-in for an external API (the expense template's ledger): `http_request`
        steps can reach it through a connection whose base URL is
        http://localhost:<port>/sandbox/sample-api. It records calls and answers 201."""
        body = await request.text()
        call = {
            "method": request.method,
            "path": "/" + request.match_info["path"],
            "authorized": request.headers.get("Authorization", "").startswith(("Bearer", "Basic")),
            "body": body[:2000],
        }
        self.sample_api_calls.append(call)
        return web.json_response(
            {"id": f"SAMPLE-{len(self.sample_api_calls)}", "received": call}, status=201
        )

    # ---------------------------------------------------------------- writes

    def _json_route(
        self, handler: Callable[[JSON], Awaitable[JSON]]
    ) -> Callable[[web.Request], Awaitable[web.Response]]:
        async def route(request: web.Request) -> web.Response:
            try:
                body = await request.json()
            except ValueError:
                body = None
            if not isinstance(body, dict):
                return web.json_response(
                    {"ok": False, "error": "a JSON object, please"}, status=400
                )
            try:
                result = await handler(body)
            except (LookupError, ValueError, SlackError) as exc:
                error = exc.error if isinstance(exc, SlackError) else str(exc).strip("'\"")
                return web.json_response({"ok": False, "error": error}, status=400)
            except aiohttp.ClientError as exc:
                return web.json_response(
                    {"ok": False, "error": f"the bot is unreachable: {exc}"}, status=502
                )
            finally:
                self.bump()
            return web.json_response({"ok": True, **result})

        return route

    async def _send(self, body: JSON) -> JSON:
        """The message box: `/flow …` is a slash command, anything else a message."""
        emu = self.emu
        user = self._user(body)
        channel = emu.resolve_channel(str(body.get("channel") or ""))
        text = escape_mentions(emu, str(body.get("text") or "").strip())
        thread_ts = body.get("thread_ts") or None
        if not text:
            raise ValueError("nothing to send")
        if text.startswith("/"):
            command, _, rest = text.partition(" ")
            resp = await self.driver.slash(user, rest.strip(), command, channel)
            if resp.error:
                shown = f"`{command}` failed with the error “{resp.error}” (HTTP {resp.status})"
                emu.add_ephemeral(channel, user, shown, None, via="sandbox")
            return {"command": command, "status": resp.status}
        msg = emu.add_message(
            channel, text, None, user=user, bot_id=None, app_id=None, thread_ts=thread_ts
        )
        self.bump()
        event = self.driver.message_event(user, channel, text, ts=msg["ts"], thread_ts=thread_ts)
        resp = await self.driver.event(event)
        return {"ts": msg["ts"], "status": resp.status}

    def _find(self, channel: str, ts: str) -> JSON:
        msg = self.emu.find_message(channel, ts)
        if msg is None:
            msg = next(
                (e for e in self.emu.ephemerals if e["ts"] == ts and e["channel"] == channel), None
            )
        if msg is None:
            raise LookupError("that message is gone")
        return msg

    async def _action(self, body: JSON) -> JSON:
        """A click on a button or a change of a select, in a message, a modal or App Home."""
        emu, driver = self.emu, self.driver
        user = self._user(body)
        block_id, action_id = str(body.get("block_id")), str(body.get("action_id"))
        raw = body.get("value")
        where = body.get("where")
        if where == "message":
            channel = emu.resolve_channel(str(body.get("channel")))
            msg = self._find(channel, str(body.get("ts")))
            element = _element_at(msg.get("blocks") or [], block_id, action_id)
            act = action_fields(element, raw)
            resp = await driver.block_action(
                user, action_id, element.get("value"), block_id, message=msg, action=act
            )
        elif where in ("modal", "home"):
            view = emu.views.get(str(body.get("view_id"))) if where == "modal" else None
            if where == "home":
                view = emu.home_views.get(user)
            if view is None:
                raise LookupError("that view is closed")
            element = _element_at(view.get("blocks") or [], block_id, action_id)
            act = action_fields(element, raw)
            values = form_state(view, body.get("values")) if where == "modal" else {}
            resp = await driver.block_action(
                user,
                action_id,
                element.get("value"),
                block_id,
                view=view,
                action=act,
                values=values,
            )
        else:
            raise ValueError("where must be message, modal or home")
        return {"status": resp.status}

    async def _submit(self, body: JSON) -> JSON:
        user = self._user(body)
        view = self.emu.views.get(str(body.get("view_id")))
        if view is None:
            raise LookupError("that modal is closed")
        values = form_state(view, body.get("values"), strict=True)
        resp = await self.driver.view_submission(user, view["id"], values)
        answer = resp.json or {}
        errors = answer.get("errors") if answer.get("response_action") == "errors" else None
        return {"status": resp.status, "errors": errors or {}, "error": resp.error}

    async def _close(self, body: JSON) -> JSON:
        user = self._user(body)
        view_id = str(body.get("view_id"))
        if view_id in self.emu.views:
            await self.driver.close_view(user, view_id)
        return {}

    async def _react(self, body: JSON) -> JSON:
        user = self._user(body)
        channel = self.emu.resolve_channel(str(body.get("channel")))
        ts, emoji = str(body.get("ts")), str(body.get("emoji") or "").strip(":")
        if not re.fullmatch(r"[a-z0-9_+-]{1,60}", emoji):
            raise ValueError("an emoji name such as thumbsup")
        msg = self.emu.find_message(channel, ts)
        if msg is None:
            raise LookupError("that message is gone")
        try:
            self.emu.conversations.add_reaction(msg, emoji, user)
        except SlackError as exc:
            if exc.error == "already_reacted":
                return {"added": False}
            raise
        self.bump()
        await self.driver.event(self.driver.reaction_event(user, emoji, channel, ts))
        return {"added": True}

    async def _home(self, body: JSON) -> JSON:
        """The person opened the App Home tab: Slack sends `app_home_opened`."""
        user = self._user(body)
        resp = await self.driver.event(self.driver.app_home_opened(user))
        return {"status": resp.status}

    async def _webhook(self, body: JSON) -> JSON:
        """Fire a webhook trigger: POST /hooks/<flow id> on the bot with the flow's token."""
        flow_id = str(body.get("flow_id") or "").strip()
        if not re.fullmatch(r"[A-Za-z0-9_-]{1,64}", flow_id):
            raise ValueError("a flow id (see /flow webhook <flow>)")
        payload = body.get("body")
        if isinstance(payload, str):
            try:
                payload = json.loads(payload or "{}")
            except ValueError as exc:
                raise ValueError(f"the body is not JSON: {exc}") from None
        headers = {"X-Flowbot-Token": str(body.get("token") or "")}
        async with (
            aiohttp.ClientSession() as session,
            session.post(f"{self.bot_url}/hooks/{flow_id}", json=payload, headers=headers) as res,
        ):
            return {"status": res.status, "answer": await res.text()}

    async def close(self) -> None:
        await self.driver.close()
