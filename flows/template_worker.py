"""Template rendering that cannot hold the event loop.

A flow's text fields are templates people write. The sandbox (`flows.templating`) bounds
their sizes and loop counts; here they also get a time budget, and run off the event loop:

- `render_text_async` / `render_value_async` render in a small pool of worker threads,
  each field with :data:`FIELD_SECONDS` of CPU time (checked in every sandbox hook; the
  single C calls between hooks are bounded by the sandbox's size limits, so each takes
  milliseconds). The event loop keeps the interpreter most of the time: the worker
  releases it every few milliseconds. Over budget, the render raises
  ``TemplateError("template took too long (over 250 ms)")``, which fails the step.
- `render_text_on_loop` / `render_value_on_loop` are for code that must stay
  synchronous; they get :data:`ON_LOOP_SECONDS`, short enough that the bot keeps
  answering others.

Plain text (no ``{``) is rendered on the loop at once: there is nothing to compute.
"""

from __future__ import annotations

import asyncio
import contextvars
import functools
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from flows.templating import render_text, render_value, time_limit

__all__ = [
    "FIELD_SECONDS",
    "ON_LOOP_SECONDS",
    "render_text_async",
    "render_text_on_loop",
    "render_value_async",
    "render_value_on_loop",
]

#: CPU time one field may take in a worker thread.
FIELD_SECONDS = 0.25
#: CPU time one field may take on the event loop (synchronous callers).
ON_LOOP_SECONDS = 0.05
_WORKERS = 2

T = TypeVar("T")


@functools.cache
def _pool() -> ThreadPoolExecutor:
    return ThreadPoolExecutor(max_workers=_WORKERS, thread_name_prefix="flowbot-template")


def _limited(seconds: float, render: Callable[..., T], *args: Any) -> T:
    def run() -> T:
        with time_limit(seconds):
            return render(*args)

    # A fresh context per render: nothing of the caller's or an earlier render's leaks.
    return contextvars.Context().run(run)


def _is_plain(source: Any) -> bool:
    if isinstance(source, str):
        return "{" not in source
    if isinstance(source, Mapping):
        return all(_is_plain(k) and _is_plain(v) for k, v in source.items())
    if isinstance(source, (list, tuple)):
        return all(_is_plain(v) for v in source)
    return True


async def _off_loop(render: Callable[..., T], source: Any, context: Mapping[str, Any]) -> T:
    if _is_plain(source):
        return _limited(ON_LOOP_SECONDS, render, source, context)
    loop = asyncio.get_running_loop()
    work = functools.partial(_limited, FIELD_SECONDS, render, source, context)
    return await loop.run_in_executor(_pool(), work)


async def render_text_async(source: str, context: Mapping[str, Any]) -> str:
    """`flows.templating.render_text` in a worker thread, with :data:`FIELD_SECONDS`."""
    return await _off_loop(render_text, source, context)


async def render_value_async(source: Any, context: Mapping[str, Any]) -> Any:
    """`flows.templating.render_value` in a worker thread, with :data:`FIELD_SECONDS`."""
    return await _off_loop(render_value, source, context)


def render_text_on_loop(source: str, context: Mapping[str, Any]) -> str:
    return _limited(ON_LOOP_SECONDS, render_text, source, context)


def render_value_on_loop(source: Any, context: Mapping[str, Any]) -> Any:
    return _limited(ON_LOOP_SECONDS, render_value, source, context)
