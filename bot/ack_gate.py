"""Acknowledgements first: the work a listener does after its `ack()` waits while other
Slack requests are still being acknowledged.

Bolt (`process_before_response=False`) runs a listener in a task of its own and answers
the HTTP request once the listener has called `ack()`; what the listener does next (the
answer to the response URL, a run and its Slack posts) shares the one event loop with
the requests still waiting for their acknowledgement. When many requests arrive at once,
that eager work delays the later acknowledgements. So `bot.server` counts the Slack
requests it is acknowledging (`AckGate.acknowledging`), and `GatedAcks`, a global Bolt
middleware, gives every listener an `ack` that, once the acknowledgement is set, waits
until no request has been acknowledged for `settle` seconds (a burst's requests arrive
one after the other), or `max_wait` seconds at most (so sustained load cannot starve the
work). A request that stayed alone since it arrived (a click with nobody else around, the
usual case) goes on at once: the settle is for bursts. Slack needs the acknowledgement
within 3 s; what follows it is only a little later under a burst.

Socket Mode's requests are not counted: there the gate is always open.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import Iterator
from typing import Any

from slack_bolt.async_app import AsyncAck
from slack_bolt.request.async_request import AsyncBoltRequest
from slack_bolt.response import BoltResponse

from flows.foreground import Foreground
from handlers.middleware import RequestMiddleware

MAX_WAIT = 0.5  # seconds
# The gate opens once no request has been acknowledged for SETTLE seconds: the requests of
# a burst arrive one after the other, and a short gap between two of them must not let the
# first ones' work in ahead of the later acknowledgements.
SETTLE = 0.025  # seconds


class _Request:
    """One request being acknowledged, as its listener (a task of its own) sees it."""

    def __init__(self, number: int, task: asyncio.Task[Any] | None) -> None:
        self.number = number  # the gate's count of requests when this one arrived
        # The task handling it: an `ack()` called there (Bolt acknowledges events itself,
        # before their listeners run) must not wait for that very request.
        self.task = task
        self.acknowledged = False


_request: contextvars.ContextVar[_Request | None] = contextvars.ContextVar("request", default=None)


class AckGate:
    """Counts the Slack requests being acknowledged; `wait` returns once there are none."""

    def __init__(
        self,
        max_wait: float = MAX_WAIT,
        settle: float = SETTLE,
        foreground: Foreground | None = None,
    ) -> None:
        self.max_wait = max_wait
        # Held while a request is being acknowledged: background work waits for it.
        self.foreground = foreground or Foreground()
        self.settle = settle
        self.in_flight = 0
        self.arrived = 0  # requests counted so far
        self._open = True  # no request acknowledged for `settle` seconds
        self._settling: asyncio.TimerHandle | None = None
        self._waiters: list[asyncio.Future[None]] = []
        # Lets the waiters go at `max_wait` after the first of them came (one timer for
        # them all, not one each: a burst has hundreds).
        self._overdue: asyncio.TimerHandle | None = None

    @contextlib.contextmanager
    def acknowledging(self) -> Iterator[None]:
        """Around the handling of one Slack request, up to its acknowledgement."""
        self.in_flight += 1
        self.arrived += 1
        self._open = False
        if self._settling is not None:
            self._settling.cancel()
            self._settling = None
        request = _Request(self.arrived, asyncio.current_task())
        request_token = _request.set(request)
        try:
            with self.foreground.hold():
                yield
        finally:
            _request.reset(request_token)
            request.acknowledged = True
            self.in_flight -= 1
            if self.in_flight == 0:
                loop = asyncio.get_running_loop()
                self._settling = loop.call_later(self.settle, self._release)

    def _release(self) -> None:
        self._settling = None
        self._open = True
        self._let_go()

    def _let_go(self) -> None:
        if self._overdue is not None:
            self._overdue.cancel()
            self._overdue = None
        waiters, self._waiters = self._waiters, []
        for waiter in waiters:
            if not waiter.done():
                waiter.set_result(None)

    def _alone(self) -> bool:
        """This listener's request is the only one since it arrived, and none is still
        being acknowledged: a lone click or command goes on at once."""
        request = _request.get()
        if request is None or self.arrived != request.number:
            return False
        return self.in_flight == (0 if request.acknowledged else 1)

    async def wait(self) -> None:
        """Returns once no request has been acknowledged for `settle` seconds, or after
        `max_wait`."""
        request = _request.get()
        if self._open or (request and request.task is asyncio.current_task()) or self._alone():
            return
        loop = asyncio.get_running_loop()
        waiter = loop.create_future()
        self._waiters.append(waiter)
        if self._overdue is None:  # under sustained load the work goes on anyway
            self._overdue = loop.call_later(self.max_wait, self._let_go)
        await waiter


class GatedAck(AsyncAck):
    """Bolt's `ack`, which then lets the other acknowledgements go first."""

    def __init__(self, gate: AckGate) -> None:
        super().__init__()
        self._gate = gate

    async def __call__(self, *args: Any, **kwargs: Any) -> BoltResponse:
        response = await super().__call__(*args, **kwargs)
        await self._gate.wait()
        return response


class GatedAcks(RequestMiddleware):
    """The Bolt middleware that hands listeners a `GatedAck`."""

    def __init__(self, gate: AckGate) -> None:
        self._gate = gate

    async def before(self, req: AsyncBoltRequest) -> None:
        # Bolt puts a plain `AsyncAck` in every request's context before the middleware
        # runs: replace it while nothing has acknowledged through it yet.
        ack = req.context.get("ack")
        if ack is None or (type(ack) is AsyncAck and ack.response is None):
            req.context["ack"] = GatedAck(self._gate)
