"""Answers through response URLs (a slash command's or a click's `response_url`) over one
long-lived pool of connections.

Bolt's `respond()` and a bare `AsyncWebhookClient` open a new aiohttp session, and so a new
TCP (and TLS) connection, for every answer; under a burst of commands that is thousands of
connects, a large part of the CPU spent after the acknowledgements. `ResponseUrls` owns one
`aiohttp.ClientSession` for the app's life (created on first use, inside the event loop;
closed by `stop()` at shutdown): Slack's response URLs are all on one host, so answers reuse
kept-alive connections. `bot/respond.py` hands Bolt's listeners a `respond()` on it.
"""

from __future__ import annotations

from collections.abc import Sequence
from ssl import SSLContext

import aiohttp
from slack_sdk.http_retry.async_handler import AsyncRetryHandler
from slack_sdk.http_retry.builtin_async_handlers import AsyncConnectionErrorRetryHandler
from slack_sdk.webhook.async_client import AsyncWebhookClient

TIMEOUT = 30.0  # seconds for one answer, as AsyncWebhookClient's default
CONNECTIONS = 64  # at most this many answers in flight at once; more wait for a connection


class ResponseUrls:
    """The app's pool of connections for response URL answers."""

    def __init__(self, *, connections: int = CONNECTIONS, timeout: float = TIMEOUT) -> None:
        self.connections = connections
        self.timeout = timeout
        self._session: aiohttp.ClientSession | None = None
        self.answers = 0  # answers sent through the pool (clients handed out)

    def session(self) -> aiohttp.ClientSession:
        if self._session is None or self._session.closed:
            self._session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=self.connections),
                timeout=aiohttp.ClientTimeout(total=self.timeout),
                trust_env=False,
            )
        return self._session

    def client(
        self,
        url: str,
        retry_handlers: Sequence[AsyncRetryHandler] = (),
        proxy: str | None = None,
        ssl: SSLContext | None = None,
    ) -> AsyncWebhookClient:
        """A webhook client for `url` on the shared connections. A kept-alive connection
        the other end has closed meanwhile fails at once: it is tried again on a new one."""
        handlers = [AsyncConnectionErrorRetryHandler(max_retry_count=1), *retry_handlers]
        self.answers += 1
        return AsyncWebhookClient(
            url, session=self.session(), retry_handlers=handlers, proxy=proxy, ssl=ssl
        )

    async def start(self) -> None:
        return None

    async def stop(self) -> None:
        if self._session is not None and not self._session.closed:
            await self._session.close()
        self._session = None
