"""The garbage collector rests while a start allocates in bulk."""

from __future__ import annotations

import contextlib
import gc
from collections.abc import Iterator


@contextlib.contextmanager
def collector_resting() -> Iterator[None]:
    """No automatic collection inside: a start that builds the records of thousands of
    scheduled flows and frees next to nothing would otherwise pay full passes over its
    growing heap again and again (over a second in all at 10,000 flows). Reference
    counting still frees what is dropped; nested uses keep the outermost one's state."""
    collecting = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if collecting:
            gc.enable()
