"""A run's writes at step boundaries, batched (issue 20).

A finished step is not written at once: it waits in `_Drive.unwritten` and rides along
with the run's next write. That write comes at the latest before the next step with an
outside effect starts (`ExecutorRegistry.has_outside_effect`: a post, a DM, an HTTP
call, a called flow), before a progress notice goes to Slack, when the run parks, ends,
is cancelled, or the process stops. So a finished side effect is always recorded before
the next one starts; a crash repeats at most steps without one (a condition, a
variable), which compute the same again, and the side effect in doubt, which
`flows.post_recovery` finds. A 3-step run (post, condition, post) costs 3 writes: the
insert, the first post and the condition before the second post, the second post with
the end; a loop of N posts about N writes.

Several branches (parallel, a concurrent for_each) share the drive: a write takes the
steps unwritten when it starts and drops only those once stored, so a step finished
meanwhile goes with the next write.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import TYPE_CHECKING

from flows.records import StepResult
from flows.run_drive import _Cancelled, _Drive, _LeaseLost, written
from flows.run_model import Park

if TYPE_CHECKING:
    from flows.runner import Runner

log = logging.getLogger("flows.runner")


def others(drive: _Drive, result: StepResult | None) -> list[StepResult]:
    """The drive's unwritten steps other than `result` (which a write records itself)."""
    return [r for r in drive.unwritten if r is not result]


def drop_written(drive: _Drive, batch: Sequence[StepResult]) -> None:
    """Forget the unwritten steps a successful write stored (by identity)."""
    stored = {id(r) for r in batch}
    drive.unwritten = [r for r in drive.unwritten if id(r) not in stored]


async def write_step(runner: Runner, drive: _Drive, result: StepResult | None) -> None:
    """One `$set` of `result` (None: the last unwritten step) with every step finished
    since the last write; refused when cancelled (the run then ends `cancelled`, keeping
    them) or when the lease is lost."""
    earlier = others(drive, result)
    if result is None:
        if not earlier:
            return
        *earlier, result = earlier
    run = drive.run
    drive.lease = runner.lease()
    write = runner.store.record_step(run.id, drive.lease, result, drive.extra(), earlier=earlier)
    if not await written(runner, run.id, result, write):
        if await runner._cancelled_at_boundary(drive, result):
            raise _Cancelled
        log.warning(
            "run %s: lease lost at step %s; another process drives it", run.id, result.step_id
        )
        raise _LeaseLost
    drop_written(drive, [*earlier, result])
    drive.replayed = None  # the store dropped the news with this write
    drive.clean()
    drive.in_doubt = False  # steps started from now on began after the crash


async def flush(runner: Runner, drive: _Drive) -> None:
    """Write the steps finished since the last write, if any."""
    if drive.unwritten:
        await write_step(runner, drive, None)


async def flush_quietly(runner: Runner, drive: _Drive) -> None:
    """Keep what finished when a drive is cut short (a stop, its task cancelled after the
    grace): a post done must not be posted again at the next start. Never raises."""
    try:
        await flush(runner, drive)
    except Exception:
        log.warning("run %s: finished steps not recorded before the stop", drive.run.id)


def _to_keep(drive: _Drive) -> list[StepResult]:
    """Unwritten steps a crash could not redo the same: all but the step resumed with
    the news its run was woken for (the store keeps that news until the run's next
    write, so a crash resumes it the same again: a decision's approval, an answered
    form, a called flow's end; none of them acts outside when resumed so)."""
    return [r for r in drive.unwritten if r.step_id != drive.replayed]


def must_flush(runner: Runner, drive: _Drive, step_type: str) -> bool:
    """Before a step of `step_type` starts: must the unwritten steps be stored first?
    (A resumed run's next post goes out without one more write: click → post.)"""
    if not drive.unwritten:
        return False
    if runner._stopping:
        return True
    return runner.executors.has_outside_effect(step_type) and bool(_to_keep(drive))


def before_notice(runner: Runner, drive: _Drive) -> bool:
    """Before a progress notice: is a finished side effect still unwritten (the notice is
    a Slack call too, and shows it as done)?"""
    if not drive.run.definition.notify:
        return False
    return any(runner.executors.has_outside_effect(r.type) for r in _to_keep(drive))


async def park_all(runner: Runner, drive: _Drive) -> None:
    """Record every step that parked during this drive and the unwritten ones in one
    write, and park the run until the first of their wake-up times."""
    parked, drive.parked = drive.parked, []
    run = drive.run
    waiting = [
        r for r, _p in parked[:-1] if r.status == "waiting" and run.steps.get(r.step_id) is r
    ]
    result, last = parked[-1]
    times = [p.wake_at for _r, p in parked if p.wake_at is not None]
    park = Park(min(times) if times else None, last.waiting_for)
    run.steps[result.step_id] = result
    run.status = "waiting"
    run.wake_at = park.wake_at
    run.waiting_for = park.waiting_for
    earlier = [*others(drive, result), *(r for r in waiting if r is not result)]
    extra = drive.extra()
    write = runner.store.park(
        run.id, drive.lease, result, park.wake_at, park.waiting_for, extra, earlier=earlier
    )
    if not await written(runner, run.id, result, write):
        if await runner._cancelled_at_boundary(drive, result):
            raise _Cancelled
        raise _LeaseLost
    drive.unwritten = []
    drive.clean()
    if park.wake_at is not None:
        runner._schedule_kick(park.wake_at)
