"""Foreground first: the work someone is waiting for goes before the work nobody waits for.

A click on an approval's button is foreground from the moment its request arrives until
the resumed run went on past the step (its next Slack call done): the person sees the
acknowledgement, then the run's next message. What a decision leaves behind (the approval
messages updated, notices, App Homes, the request marked resumed) is background: each
piece (`background()`) starts once nothing is in the foreground and no other piece runs,
so the leftovers of earlier decisions neither share the database and the event loop with
the next click's path in a heap nor are let loose all at once when a click is done.
`max_wait` bounds each piece's wait, so sustained clicks cannot starve the background.

`bot.ack_gate` holds the foreground while a Slack request is being acknowledged; the
people-request services (`flows.people_requests`) hold it from a response until its run
went on, and do their work after a decision in background pieces.
"""

from __future__ import annotations

import asyncio
import contextlib
import contextvars
from collections.abc import AsyncIterator

MAX_WAIT = 1.0  # seconds

# Set inside a background piece: only there does `pause` wait (elsewhere, the caller may
# be the foreground itself, e.g. a resumed run requesting its next approval).
_in_piece: contextvars.ContextVar[bool] = contextvars.ContextVar("in_piece", default=False)


class Hold:
    """One piece of foreground work; `release` (idempotent) ends it."""

    def __init__(self, foreground: Foreground) -> None:
        self._foreground: Foreground | None = foreground

    def release(self) -> None:
        foreground, self._foreground = self._foreground, None
        if foreground is not None:
            foreground.busy -= 1
            foreground.wake()

    def __enter__(self) -> Hold:
        return self

    def __exit__(self, *_exc: object) -> None:
        self.release()


class Foreground:
    """Counts the foreground work in progress (`hold`) and lets background pieces run one
    at a time while there is none (`background`)."""

    def __init__(self, max_wait: float = MAX_WAIT) -> None:
        self.max_wait = max_wait
        self.busy = 0  # foreground work in progress
        self.running = 0  # background pieces running
        self._waiters: list[asyncio.Future[None]] = []  # pieces waiting to start
        self._paused: list[asyncio.Future[None]] = []  # running pieces that let a click by

    def hold(self) -> Hold:
        self.busy += 1
        return Hold(self)

    def _free(self) -> bool:
        return self.busy == 0 and self.running == 0

    def wake(self) -> None:
        """Let the paused pieces go on once no foreground work is in progress, else the
        first waiting piece start if none runs."""
        if self.busy == 0 and self._paused:
            paused, self._paused = self._paused, []
            for waiter in paused:
                if not waiter.done():
                    waiter.set_result(None)
        while self._waiters and self._free():
            waiter = self._waiters.pop(0)
            if not waiter.done():
                waiter.set_result(None)
                return

    @contextlib.asynccontextmanager
    async def background(self) -> AsyncIterator[None]:
        """Around a piece of background work: it starts once no foreground work is in
        progress and no other piece runs (in the order they asked), or after `max_wait`."""
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.max_wait
        while not self._free() and loop.time() < deadline:
            waiter = loop.create_future()
            self._waiters.append(waiter)
            try:
                async with asyncio.timeout_at(deadline):
                    await waiter
            except TimeoutError:
                break  # waited long enough: the background goes on anyway
            except BaseException:
                if waiter.done() and not waiter.cancelled():
                    self.wake()  # woken but not going: the next one goes instead
                raise
            finally:
                if waiter in self._waiters:
                    self._waiters.remove(waiter)
        self.running += 1
        token = _in_piece.set(True)
        try:
            yield
        finally:
            _in_piece.reset(token)
            self.running -= 1
            self.wake()

    async def pause(self) -> None:
        """Inside a long background piece, between its steps: wait while foreground work is
        in progress (`max_wait` at most), keeping the piece's turn. Outside a piece: at
        once."""
        if self.busy == 0 or not _in_piece.get():
            return
        waiter = asyncio.get_running_loop().create_future()
        self._paused.append(waiter)
        try:
            async with asyncio.timeout(self.max_wait):
                await waiter
        except TimeoutError:
            pass  # sustained foreground: the piece goes on
        finally:
            if waiter in self._paused:
                self._paused.remove(waiter)
