"""Which request or run a log line is about: context variables a logging filter reads.

A request id is set for each HTTP request (`bot.server`); a run id for each task driving
a run (`flows.runner`). Tasks copy the context they are created in, so the work a request
starts carries its request id, and each run's driver carries its run id."""

from __future__ import annotations

from collections.abc import Awaitable
from contextvars import ContextVar
from typing import TypeVar

T = TypeVar("T")

request_id: ContextVar[str | None] = ContextVar("flowbot_request_id", default=None)
run_id: ContextVar[str | None] = ContextVar("flowbot_run_id", default=None)


def bind_run(value: str) -> None:
    """The current task is about run `value` from now on."""
    run_id.set(value)


def bind_request(value: str) -> None:
    request_id.set(value)


async def about_run(value: str, work: Awaitable[T]) -> T:
    """Await `work` with the run id bound (inside the task that drives the run)."""
    run_id.set(value)
    return await work
