"""Slack's Socket Mode side of the emulator: `apps.connections.open` and the WebSocket.

As Slack does: `apps.connections.open` takes the app-level token (`xapp-…`) and answers a
one-use `ws://…/socket/link/?ticket=…` URL; on connecting, the socket says `hello`; slash
commands, interactive payloads and events arrive as envelopes (`slash_commands`,
`interactive`, `events_api`) that the app acknowledges with `{"envelope_id", "payload"}`
within 3 seconds. Tests read `acks`, and can drop the connection (`drop()`: a close frame;
`drop(abort=True)`: the network goes away) or ask the app to reconnect (`refresh()`: the
`disconnect` message Slack sends before it rotates its servers).
"""

from __future__ import annotations

import asyncio
import json
import secrets
import time
import uuid
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aiohttp import WSMsgType, web

if TYPE_CHECKING:
    from .server import SlackEmulator

JSON = dict[str, Any]
APP_TOKEN = "xapp-1-A0FLOWBOT-1-test"
ACK_TIMEOUT = 3.0
ENVELOPE_TYPES = ("slash_commands", "interactive", "events_api")


class NoConnection(Exception):
    """Nothing is connected: Slack would show the user that the app did not respond."""


@dataclass
class Ack:
    """What the app answered on the socket for one envelope."""

    envelope_id: str
    type: str
    payload: JSON | None  # the acknowledgement's payload (response_action, a message …)
    elapsed: float


@dataclass
class Connection:
    number: int
    ws: web.WebSocketResponse
    transport: asyncio.BaseTransport | None
    opened_at: float = field(default_factory=time.monotonic)
    closed: bool = False


class SocketModeEmulator:
    """Mounted on the emulator's web app by `SlackEmulator`; `emulator.socket_mode`."""

    def __init__(self, emulator: SlackEmulator, app_token: str = APP_TOKEN) -> None:
        self.emulator = emulator
        self.app_token = app_token
        self.enabled = True  # False: apps.connections.open answers as if Slack were down
        self.connections: list[Connection] = []
        self.acks: list[Ack] = []
        self.envelopes: list[JSON] = []  # every envelope sent, in order
        self.opened = 0  # successful apps.connections.open calls
        self._tickets: set[str] = set()
        self._pending: dict[str, asyncio.Future[JSON]] = {}
        self._changed = asyncio.Event()

    def mount(self, app: web.Application) -> None:
        """Add the routes; before the emulator's generic `/api/{method}` route."""
        app.router.add_post("/api/apps.connections.open", self._connections_open)
        app.router.add_get("/socket/link/", self._socket)

    # ---------------------------------------------------------------- Slack's side

    async def _connections_open(self, request: web.Request) -> web.Response:
        header = request.headers.get("Authorization", "")
        token = header[7:].strip() if header.startswith("Bearer ") else ""
        if not token and request.can_read_body:
            token = str((await request.post()).get("token") or "")
        self.emulator.calls.append(("apps.connections.open", {}))
        if not self.enabled:
            return web.json_response({"ok": False, "error": "fatal_error"}, status=500)
        if not token:
            return web.json_response({"ok": False, "error": "not_authed"})
        if token.startswith(("xoxb-", "xoxp-")):
            return web.json_response({"ok": False, "error": "not_allowed_token_type"})
        if token != self.app_token:
            return web.json_response({"ok": False, "error": "invalid_auth"})
        ticket = secrets.token_hex(16)
        self._tickets.add(ticket)
        self.opened += 1
        base = self.emulator.base_url.replace("http://", "ws://", 1)
        url = f"{base}socket/link/?ticket={ticket}&app_id={self.emulator.app_id}"
        return web.json_response({"ok": True, "url": url})

    async def _socket(self, request: web.Request) -> web.StreamResponse:
        ticket = request.query.get("ticket", "")
        if ticket not in self._tickets:  # each URL connects once
            return web.json_response({"ok": False, "error": "invalid_ticket"}, status=401)
        self._tickets.discard(ticket)
        ws = web.WebSocketResponse(autoping=True)
        await ws.prepare(request)
        connection = Connection(len(self.connections) + 1, ws, request.transport)
        self.connections.append(connection)
        await ws.send_json(
            {
                "type": "hello",
                "num_connections": len(self.open_connections),
                "debug_info": {
                    "host": "applink-emulator",
                    "build_number": 1,
                    "approximate_connection_time": 18060,
                },
                "connection_info": {"app_id": self.emulator.app_id},
            }
        )
        self._notify()
        try:
            async for message in ws:
                if message.type == WSMsgType.TEXT:
                    self._receive(message.data)
        finally:
            connection.closed = True
            self._notify()
        return ws

    def _receive(self, data: str) -> None:
        try:
            answer = json.loads(data)
        except ValueError:
            return
        if not isinstance(answer, dict):
            return
        future = self._pending.get(str(answer.get("envelope_id")))
        if future is not None and not future.done():
            future.set_result(answer)

    def _notify(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    # ---------------------------------------------------------------- what tests use

    @property
    def open_connections(self) -> list[Connection]:
        return [c for c in self.connections if not c.closed and not c.ws.closed]

    @property
    def connected(self) -> bool:
        return bool(self.open_connections)

    async def wait_connected(self, count: int = 1, timeout: float = 10.0) -> Connection:
        """The latest connection, once `count` connections were made and one is open."""
        deadline = time.monotonic() + timeout
        while not (self.connected and len(self.connections) >= count):
            left = deadline - time.monotonic()
            if left <= 0:
                raise TimeoutError(f"no Socket Mode connection #{count} within {timeout}s")
            changed = self._changed
            try:
                await asyncio.wait_for(changed.wait(), min(left, 0.5))
            except asyncio.TimeoutError:
                pass
        return self.open_connections[-1]

    async def drop(self, *, abort: bool = False) -> None:
        """Drop every open connection: with a close frame, or (abort) as a dead network."""
        for connection in self.open_connections:
            connection.closed = True
            if abort:
                if isinstance(connection.transport, asyncio.WriteTransport):
                    connection.transport.abort()
            else:
                await connection.ws.close(code=1001, message=b"going away")
        self._notify()

    async def refresh(self) -> None:
        """Slack's `disconnect` message: the app should open a new connection."""
        for connection in self.open_connections:
            await connection.ws.send_json(
                {
                    "type": "disconnect",
                    "reason": "refresh_requested",
                    "debug_info": {"host": "applink-emulator"},
                }
            )

    async def send(
        self,
        envelope_type: str,
        payload: JSON,
        *,
        retry_attempt: int = 0,
        retry_reason: str = "",
        timeout: float = ACK_TIMEOUT + 2,
    ) -> Ack | None:
        """Deliver an envelope on the newest open connection; its acknowledgement, or None
        when none came within `timeout` (Slack gives up after 3 seconds)."""
        if envelope_type not in ENVELOPE_TYPES:
            raise ValueError(f"unknown envelope type {envelope_type!r}")
        if not self.open_connections:
            raise NoConnection("no Socket Mode connection is open")
        envelope: JSON = {
            "envelope_id": str(uuid.uuid4()),
            "type": envelope_type,
            "payload": payload,
            "accepts_response_payload": envelope_type != "events_api",
        }
        if envelope_type == "events_api":
            envelope["retry_attempt"] = retry_attempt
            envelope["retry_reason"] = retry_reason
        future: asyncio.Future[JSON] = asyncio.get_running_loop().create_future()
        self._pending[envelope["envelope_id"]] = future
        self.envelopes.append(envelope)
        start = time.perf_counter()
        try:
            await self.open_connections[-1].ws.send_json(envelope)
            answer = await asyncio.wait_for(future, timeout)
        except asyncio.TimeoutError:
            return None
        finally:
            self._pending.pop(envelope["envelope_id"], None)
        ack_payload = answer.get("payload")
        ack = Ack(
            envelope["envelope_id"],
            envelope_type,
            ack_payload if isinstance(ack_payload, dict) else None,
            time.perf_counter() - start,
        )
        self.acks.append(ack)
        return ack

    async def close(self) -> None:
        """Close every connection (the emulator stops)."""
        for connection in list(self.open_connections):
            connection.closed = True
            await connection.ws.close()
