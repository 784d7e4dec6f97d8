"""A cancelled run cancels its child runs (SPEC §11, §12).

Whichever way a run is cancelled (`/flow cancel`, its Cancel button, its flow deleted),
the runner tells its `on_cancelled` listeners; `ChildRuns.on_run_cancelled` is one of
them. It cancels every unfinished run the cancelled one started with `call_flow` (their
ids are in the call steps' recorded outputs), as `/flow cancel` would: a waiting child
ends `cancelled` at once and its pending approvals and forms close (the same listeners
run for it), a child being driven stops at its next step boundary. A child's own
children follow, since its cancellation tells the listeners again.
"""

from __future__ import annotations

import logging
from dataclasses import replace
from typing import TYPE_CHECKING

from flows.records import RunRecord
from flows.run_model import CancelRequest

if TYPE_CHECKING:
    from flows.runner import Runner

log = logging.getLogger(__name__)

CALL_STEP = "call_flow"


def child_run_ids(run: RunRecord) -> list[str]:
    """The runs started by the run's call_flow steps (in loops and branches too)."""
    ids: list[str] = []
    for result in run.steps.values():
        if result.type != CALL_STEP:
            continue
        child = result.output.get("run_id")
        if isinstance(child, str) and child and child not in ids:
            ids.append(child)
    return ids


async def cancel_one(runner: Runner, run_id: str, request: CancelRequest) -> RunRecord | bool:
    """Cancel one run as `/flow cancel` does: the run ended now (its listeners told, its
    message updated), True (being driven: it stops at its next step boundary), or False
    (it had ended)."""
    request = replace(request, words=runner.describe_cancel(request))
    outcome = await runner.store.cancel_run(run_id, request)
    if isinstance(outcome, RunRecord):
        await runner._tell_cancel_listeners(outcome, request)
        previous = runner._tasks.get(outcome.id)
        runner._track(outcome.id, runner._after_cancel(previous, outcome, request))
    return outcome


class ChildRuns:
    """The `on_cancelled` listener that cancels a cancelled run's unfinished children."""

    def __init__(self, runner: Runner) -> None:
        self.runner = runner

    async def on_run_cancelled(self, run: RunRecord, request: CancelRequest) -> None:
        for child_id in child_run_ids(run):
            child = await self.runner.get(child_id)
            if child is None or child.finished:
                continue
            reason = f"its calling run {run.id} was cancelled"
            outcome = await cancel_one(self.runner, child_id, replace(request, reason=reason))
            log.info("run %s: child run %s cancelled (%s)", run.id, child_id, outcome)


__all__ = ["ChildRuns", "cancel_one", "child_run_ids"]
