"""`respond()` for Bolt's listeners (and the error handler) over the app's pool of
connections for response URLs (`adapters.response_urls.ResponseUrls`), instead of Bolt's,
which opens a new connection per answer. The payloads are exactly those Bolt sends."""

from __future__ import annotations

from collections.abc import Sequence
from ssl import SSLContext
from typing import Any

from slack_bolt.context.respond.async_respond import AsyncRespond
from slack_bolt.context.respond.internals import _build_message
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_sdk.models.attachments import Attachment
from slack_sdk.models.blocks import Block
from slack_sdk.webhook.async_client import WebhookResponse

from adapters.response_urls import ResponseUrls
from handlers.middleware import RequestMiddleware


class PooledRespond(AsyncRespond):
    """Bolt's `respond()`, sent over `ResponseUrls`' connections."""

    def __init__(
        self,
        pool: ResponseUrls,
        *,
        response_url: str | None,
        proxy: str | None = None,
        ssl: SSLContext | None = None,
    ) -> None:
        super().__init__(response_url=response_url, proxy=proxy, ssl=ssl)
        self._pool = pool

    async def __call__(
        self,
        text: str | dict[str, Any] = "",
        blocks: Sequence[dict[str, Any] | Block] | None = None,
        attachments: Sequence[dict[str, Any] | Attachment] | None = None,
        response_type: str | None = None,
        replace_original: bool | None = None,
        delete_original: bool | None = None,
        unfurl_links: bool | None = None,
        unfurl_media: bool | None = None,
        thread_ts: str | None = None,
        metadata: dict[str, Any] | None = None,
    ) -> WebhookResponse:
        if self.response_url is None:
            raise ValueError("respond is unsupported here as there is no response_url")
        if isinstance(text, dict):
            message = _build_message(**text)
        elif isinstance(text, str):
            message = _build_message(
                text=text,
                blocks=blocks,
                attachments=attachments,
                response_type=response_type,
                replace_original=replace_original,
                delete_original=delete_original,
                unfurl_links=unfurl_links,
                unfurl_media=unfurl_media,
                thread_ts=thread_ts,
                metadata=metadata,
            )
        else:
            raise ValueError(f"The arg is unexpected type ({type(text)})")
        client = self._pool.client(self.response_url, proxy=self.proxy, ssl=self.ssl)
        return await client.send_dict(message)


class PooledResponds(RequestMiddleware):
    """The Bolt middleware that hands listeners (and the error handler) a `respond()` on
    the pool's connections."""

    def __init__(self, pool: ResponseUrls) -> None:
        self._pool = pool

    async def before(self, req: AsyncBoltRequest) -> None:
        context = req.context
        if context.response_url is not None and not isinstance(
            context.get("respond"), PooledRespond
        ):
            client = context.client
            context["respond"] = PooledRespond(
                self._pool,
                response_url=context.response_url,
                proxy=client.proxy if client is not None else None,
                ssl=client.ssl if client is not None else None,
            )
