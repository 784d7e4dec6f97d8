"""`timeout` on a container step (for_each, parallel, try; SPEC §12).

When a container with a `timeout` starts, its deadline is recorded with it (a `running`
result; a for_each keeps it with its items), so a wait inside the body, a restart or a
crash does not move it. While the body runs, it runs under that deadline; while the body
waits, the run wakes at the deadline at the latest. When it passes, the container fails
with a timeout error and its unfinished body stops: a step running then is interrupted,
and every step of the body still waiting is ended (recorded failed, "stopped") and
closed through its executor's optional `abandon` (an approval or a form is cancelled and
its message says so, a called flow's run is cancelled). A `try` around it, or
`on_error: continue` on it, sees an ordinary failure.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any

from flows.definition.steps import nested_bodies
from flows.records import RunRecord, StepResult
from flows.run_drive import _Drive, _Parked
from flows.run_model import Park, StepContext, StepExecutor

if TYPE_CHECKING:
    from flows.runner import Runner

log = logging.getLogger(__name__)

#: The deadline in the container's recorded output (ISO text), as flows.retries uses.
DEADLINE = "timeout_at"


def _nested_ids(steps: Sequence[Any]) -> set[str]:
    ids: set[str] = set()
    for step in steps:
        ids.add(step.id)
        for _name, _where, body in nested_bodies(step):
            ids |= _nested_ids(body)
    return ids


def inner_keys(run: RunRecord, step: Any, key: str, prefix: str) -> list[str]:
    """The recorded results of the container's body (iterations, branches, nested)."""
    ids = set()
    for _name, _where, body in nested_bodies(step):
        ids |= _nested_ids(body)
    found = []
    for other in run.steps:
        if other == key or not other.startswith(prefix):
            continue
        head = other[len(prefix) :].split("/", 1)[0].split("[", 1)[0]
        if other.startswith(key + "[") or head in ids:
            found.append(other)
    return found


def _recorded_deadline(recorded: StepResult | None) -> datetime | None:
    if recorded is None or recorded.status != "running":
        return None
    raw = recorded.output.get(DEADLINE)
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)
    try:
        return datetime.fromisoformat(str(raw)) if raw else None
    except ValueError:
        return None


async def _stop_body(runner: Runner, drive: _Drive, step: Any, ctx: StepContext) -> None:
    """End every unfinished step of the body: waiting ones are closed and recorded."""
    run = drive.run
    keys = set(inner_keys(run, step, ctx.step_id, ctx.scope.key("")))
    drive.parked = [(r, p) for r, p in drive.parked if r.step_id not in keys]
    reason = f"{ctx.step_id} timed out after {step.timeout}"
    for key in sorted(keys):
        result = run.steps[key]
        if result.status not in ("waiting", "running"):
            continue
        inner = run.definition.step(key.rsplit("/", 1)[-1])
        executor: StepExecutor | None = runner.executors.get(result.type)
        abandon = getattr(executor, "abandon", None)
        if inner is not None and abandon is not None and result.status == "waiting":
            try:
                await abandon(inner, StepContext(run, key, runner.clock, ctx.scope), reason)
            except Exception:
                log.exception("run %s: closing step %s failed", run.id, key)
        stopped = result.model_copy(
            update={
                "status": "failed",
                "error": f"stopped: {reason}",
                "finished_at": runner.clock.now(),
                "wake_at": None,
                "output": {**result.output, "ok": False, "error": f"stopped: {reason}"},
            }
        )
        run.steps[key] = stopped
        await runner._write_step(drive, stopped)


async def bounded_container(
    runner: Runner,
    drive: _Drive,
    step: Any,
    executor: StepExecutor,
    recorded: StepResult | None,
    started_at: datetime,
    ctx: StepContext,
    limit: timedelta,
) -> Any:
    """The container's outcome under its deadline; a `_Failure` once it passed."""
    key = ctx.step_id
    deadline = _recorded_deadline(recorded)
    if deadline is None:
        deadline = started_at + limit
        recorded = StepResult(
            step_id=key,
            type=step.type,
            status="running",
            output={DEADLINE: deadline.isoformat()},
            started_at=started_at,
        )
        drive.run.steps[key] = recorded
        await runner._write_step(drive, recorded)
    marker = recorded
    assert marker is not None
    remaining = (deadline - runner.clock.now()).total_seconds()
    try:
        if remaining <= 0:
            raise asyncio.TimeoutError
        outcome = runner._outcome(drive, step, executor, recorded, started_at, ctx)
        return await asyncio.wait_for(outcome, remaining)
    except asyncio.TimeoutError:
        await _stop_body(runner, drive, step, ctx)
        message = f"timed out after {step.timeout}"
        raise runner._failure(key, step.type, started_at, message) from None
    except _Parked:
        # The body waits: wake at the deadline at the latest.
        drive.parked.insert(0, (marker, Park(deadline, None, {})))
        raise


__all__ = ["bounded_container", "inner_keys"]
