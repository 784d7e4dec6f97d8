"""Views come back with the `private_metadata` the bot sealed (`adapters.sealing_client`):
opened here, before any listener reads it. A view whose metadata the bot did not write (a
forged or altered payload) is refused with a 400, and nothing runs."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from slack_bolt.async_app import AsyncApp
from slack_bolt.response import BoltResponse

from flows.sealed import MetadataSeal

log = logging.getLogger(__name__)


def register(app: AsyncApp, seal: MetadataSeal) -> None:
    @app.use
    async def open_private_metadata(
        body: dict[str, Any], response: BoltResponse, next: Callable[[], Awaitable[None]]
    ) -> BoltResponse:
        view = body.get("view")
        if isinstance(view, dict) and isinstance(view.get("private_metadata"), str):
            opened = seal.open(view["private_metadata"])
            if opened is None:
                log.info("refused a %s with metadata the bot did not write", body.get("type"))
                return BoltResponse(
                    status=400,
                    body='{"error": "invalid_metadata"}',
                    headers={"content-type": "application/json"},
                )
            view["private_metadata"] = opened
        await next()
        return response
