"""`POST /hooks/<flow id>`: the aiohttp side of webhook triggers.

The body is read up to 256 KiB (a larger one is refused before it is read in full); the
decision — token, enabled, JSON, depth, the run — is `flows.triggers.TriggerService`'s.
"""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable

from aiohttp import web

from bot.app import Flowbot
from flows.triggers import (
    DELIVERY_HEADER,
    DEPTH_HEADER,
    MAX_WEBHOOK_BODY,
    TOKEN_HEADER,
    TriggerService,
)

log = logging.getLogger(__name__)

Handler = Callable[[web.Request], Awaitable[web.Response]]


def _error(status: int, error: str, message: str) -> web.Response:
    return web.json_response({"ok": False, "error": error, "message": message}, status=status)


async def read_body(request: web.Request, limit: int = MAX_WEBHOOK_BODY) -> bytes | None:
    """The body, or None when it is over `limit` bytes."""
    if request.content_length is not None and request.content_length > limit:
        return None
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.content.iter_chunked(64 * 1024):
        size += len(chunk)
        if size > limit:
            return None
        chunks.append(chunk)
    return b"".join(chunks)


def webhook_handler(key: web.AppKey[Flowbot]) -> Handler:
    """The route handler; the web app keeps the running Flowbot under `key`."""

    async def receive(request: web.Request) -> web.Response:
        triggers: TriggerService | None = request.app[key].deps.triggers
        if triggers is None:
            return _error(503, "webhooks_unavailable", "Webhook triggers are not set up.")
        body = await read_body(request)
        if body is None:
            return _error(400, "body_too_large", f"The body is over {MAX_WEBHOOK_BODY} bytes.")
        try:
            result = await triggers.receive_webhook(
                request.match_info["flow_id"],
                request.headers.get(TOKEN_HEADER),
                body,
                depth_header=request.headers.get(DEPTH_HEADER),
                delivery=request.headers.get(DELIVERY_HEADER),
                query=dict(request.query),
                headers=dict(request.headers),
            )
        except Exception:
            log.exception("webhook for %s failed", request.match_info["flow_id"])
            return _error(500, "internal_error", "The flow could not be started.")
        return web.json_response(result.body, status=result.status)

    return receive
