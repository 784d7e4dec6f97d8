"""Socket Mode: Slack's requests arrive over a WebSocket the bot opens, so no public URL.

Bolt's async Socket Mode handler on aiohttp (`slack_sdk.socket_mode.aiohttp`) does the
work: `apps.connections.open` with the app-level token, then the WebSocket it returns;
every envelope is dispatched to the same Bolt app (the same listeners) as HTTP mode, and
acknowledged on the socket with what the listener's `ack()` said. The client reconnects
by itself when the socket closes, when Slack asks it to (`disconnect`) and when pings go
unanswered. This service adds what an operator needs: a refused token is a one-line
start-up error, the socket's state for /healthz, and a log line when it comes and goes.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from typing import Any, Literal

import aiohttp
from slack_bolt.adapter.socket_mode.aiohttp import AsyncSocketModeHandler
from slack_bolt.async_app import AsyncApp
from slack_sdk.errors import SlackApiError
from slack_sdk.socket_mode.async_client import AsyncBaseSocketModeClient
from slack_sdk.web.async_client import AsyncWebClient

log = logging.getLogger(__name__)

PING_INTERVAL = 10.0  # seconds; a socket without pongs for 4 intervals is replaced
SocketState = Literal["off", "connecting", "connected"]

# apps.connections.open errors that no retry will cure: the token itself is wrong.
REFUSED = {
    "invalid_auth": "Slack does not know this token",
    "not_authed": "the token is empty",
    "account_inactive": "the app or its workspace was deleted",
    "token_revoked": "the token was revoked",
    "not_allowed_token_type": "it is not an app-level token",
    "missing_scope": "the token lacks the connections:write scope",
}
HOW_TO_FIX = (
    "create an app-level token with the connections:write scope under Basic Information → "
    "App-Level Tokens, enable Socket Mode, and set it as SLACK_APP_TOKEN"
)


class SocketModeRefused(RuntimeError):
    """Slack refused the app-level token: the bot cannot receive anything."""


class SocketMode:
    """The Socket Mode connection, as a service of the bot (started last, stopped first)."""

    def __init__(
        self,
        bolt: AsyncApp,
        app_token: str,
        client: AsyncWebClient,
        *,
        ping_interval: float = PING_INTERVAL,
    ) -> None:
        self.bolt = bolt
        self.app_token = app_token
        self.client = client
        self.ping_interval = ping_interval
        self.handler: AsyncSocketModeHandler | None = None
        self._connecting: asyncio.Task[None] | None = None

    async def start(self) -> None:
        # The first URL is asked for here, so a refused token stops the start in one line
        # instead of being retried (and logged with a traceback) forever.
        url = await self._first_url()
        handler = AsyncSocketModeHandler(
            self.bolt, self.app_token, web_client=self.client, ping_interval=self.ping_interval
        )
        socket = handler.client
        socket.wss_uri = url  # type: ignore[assignment]  # None: the client asks for one
        socket.message_listeners.append(_log_control_messages)
        socket.on_close_listeners.append(_log_close)
        self.handler = handler
        # Connecting (and retrying) runs in the background: /healthz says "connecting".
        self._connecting = asyncio.create_task(handler.connect_async(), name="socket-mode")

    async def _first_url(self) -> str | None:
        try:
            response = await self.client.apps_connections_open(app_token=self.app_token)
        except SlackApiError as exc:
            error = str(exc.response.get("error", ""))
            if error in REFUSED:
                raise SocketModeRefused(
                    f"SLACK_APP_TOKEN was refused by Slack ({error}: {REFUSED[error]}); "
                    + HOW_TO_FIX
                ) from None
            log.warning("Socket Mode: apps.connections.open failed (%s); retrying", error)
            return None
        except (aiohttp.ClientError, OSError, asyncio.TimeoutError) as exc:
            log.warning("Socket Mode: Slack is unreachable (%s); retrying", exc or type(exc))
            return None
        url = response.get("url")
        return url if isinstance(url, str) else None

    async def state(self) -> SocketState:
        handler = self.handler
        if handler is None or handler.client.closed:
            return "off"
        return "connected" if await handler.client.is_connected() else "connecting"

    async def stop(self) -> None:
        if self._connecting is not None:
            self._connecting.cancel()
            with contextlib.suppress(asyncio.CancelledError, Exception):
                await self._connecting
            self._connecting = None
        if self.handler is not None:
            await self.handler.close_async()
            self.handler = None


async def _log_control_messages(
    client: AsyncBaseSocketModeClient, message: dict[str, Any], raw: str | None
) -> None:
    kind = message.get("type")
    if kind == "hello":
        count = message.get("num_connections")
        log.info("Socket Mode: connected to Slack (%s connection(s) open for this app)", count)
    elif kind == "disconnect":
        log.info("Socket Mode: Slack asked to reconnect (%s)", message.get("reason", "?"))


async def _log_close(message: Any) -> None:
    log.info("Socket Mode: Slack closed a connection (a new one replaces it)")
