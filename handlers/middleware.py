"""Global Bolt middleware as classes with one plain method.

Bolt builds a function middleware's arguments by inspecting its signature on every
request (about 30 µs each, more than most middleware's own work, paid by every
acknowledgement); a middleware object is called directly."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from slack_bolt.middleware.async_middleware import AsyncMiddleware
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse


class RequestMiddleware(AsyncMiddleware):
    """`before(req)` runs ahead of the listeners: it returns None to go on, or the
    response that ends the request there."""

    async def before(self, req: AsyncBoltRequest) -> BoltResponse | None:
        raise NotImplementedError

    async def async_process(
        self,
        *,
        req: AsyncBoltRequest,
        resp: BoltResponse,
        next: Callable[[], Awaitable[BoltResponse]],
    ) -> BoltResponse:
        stop = await self.before(req)
        if stop is not None:
            return stop
        await next()
        return resp
