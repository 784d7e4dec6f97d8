"""The "run started" notice off the run's path (issue 20).

`OffPathNotices` wraps a `RunNotifier`: a run's "started" notice is sent in a task of its
own, so the run's first step starts while Slack answers (in a busy notify channel, paced
at one message a second, that answer can take a while). The run's next notice waits for
it, updates the same message, and hands its ref to the runner, which records it with the
run's next write. A progress notice due while the "started" one is still on its way is
skipped: the next notice shows the progress anyway.
"""

from __future__ import annotations

import asyncio
import logging

from flows.records import MessageRef, RunRecord
from flows.run_model import RunEvent, RunNotifier

log = logging.getLogger(__name__)

# Started notices whose run ended without another notice (a lost lease, a shutdown) are
# forgotten once this many are kept.
_KEEP = 1000


class OffPathNotices:
    """A `RunNotifier` sending "started" notices in the background (see the module)."""

    def __init__(self, inner: RunNotifier) -> None:
        self.inner = inner
        self._started: dict[str, asyncio.Task[MessageRef | None]] = {}

    async def run_event(self, run: RunRecord, event: RunEvent) -> MessageRef | None:
        if event == "started":
            if len(self._started) >= _KEEP:
                self._started = {k: t for k, t in self._started.items() if not t.done()}
            self._started[run.id] = asyncio.create_task(self._send(run.model_copy(), event))
            return run.notify_message
        pending = self._started.get(run.id)
        if pending is not None:
            if event == "progress" and not pending.done():
                return run.notify_message
            del self._started[run.id]
            ref = await pending
            if ref is not None and run.notify_message is None:
                # This notice updates the message the started one posted.
                run = run.model_copy(update={"notify_message": ref})
        return await self._send(run, event)

    async def _send(self, run: RunRecord, event: RunEvent) -> MessageRef | None:
        try:
            return await self.inner.run_event(run, event)
        except Exception:
            log.exception("run %s: notification (%s) failed", run.id, event)
            return run.notify_message

    async def wait_idle(self) -> None:
        """Until every started notice has been answered (tests, benchmarks)."""
        while pending := [t for t in self._started.values() if not t.done()]:
            await asyncio.gather(*pending, return_exceptions=True)
