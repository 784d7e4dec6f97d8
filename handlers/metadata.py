"""Views come back with the `private_metadata` the bot sealed (`adapters.sealing_client`):
opened here, before any listener reads it. A view whose metadata the bot did not write (a
forged or altered payload) is refused with a 400, and nothing runs."""

from __future__ import annotations

import logging

from slack_bolt.async_app import AsyncApp
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from flows.sealed import MetadataSeal
from handlers.middleware import RequestMiddleware

log = logging.getLogger(__name__)


class OpenPrivateMetadata(RequestMiddleware):
    """Opens a view's sealed `private_metadata` before any listener reads it."""

    def __init__(self, seal: MetadataSeal) -> None:
        self._seal = seal

    async def before(self, req: AsyncBoltRequest) -> BoltResponse | None:
        body = req.body
        view = body.get("view")
        if isinstance(view, dict) and isinstance(view.get("private_metadata"), str):
            opened = self._seal.open(view["private_metadata"])
            if opened is None:
                log.info("refused a %s with metadata the bot did not write", body.get("type"))
                return BoltResponse(
                    status=400,
                    body='{"error": "invalid_metadata"}',
                    headers={"content-type": "application/json"},
                )
            view["private_metadata"] = opened
        return None


def register(app: AsyncApp, seal: MetadataSeal) -> None:
    app.use(OpenPrivateMetadata(seal))
