"""Failure handling around one step (SPEC §12): `retry`, `timeout` and `on_error`.

The runner asks `guarded_outcome` for a step's outcome instead of executing it directly.

Retries. A step whose try fails with a transient error (`StepFailed.transient`: HTTP 408,
429, 5xx, timeouts, lost connections, Slack's rate limits and server errors) and that has
tries left is parked: its waiting result records the tries so far (`attempts`, and each
failed try's error in `tries`) and wakes at `now + wait` (the backoff, doubling up to
`max_backoff`, and at least the server's Retry-After). The run is stored `waiting` like any
wait, so a restart keeps the count. When the waker wakes it, the step is tried again. A
4xx, a template error or a refusal is not transient, so it is not retried.

Timeouts. `timeout` bounds a step's try while it executes (asyncio), and a step that waits
(a delay, a called flow) fails when it passes. Approvals and asks keep their own
`timeout` (they end `expired`); an http_request's bounds each HTTP try.

on_error: continue. The failed step is recorded `failed` (its output has `ok: false` and
`error`) and the run goes on.
"""

from __future__ import annotations

import asyncio
import email.utils
import logging
from collections.abc import Mapping
from datetime import datetime, timedelta, timezone
from typing import TYPE_CHECKING, Any, cast

from flows.container_timeout import bounded_container
from flows.definition.failure import RetryPolicy
from flows.durations import parse_duration
from flows.records import StepResult
from flows.run_drive import _Drive, _Failure
from flows.run_model import (
    Done,
    Outcome,
    Park,
    StepContext,
    StepExecutor,
    StepFailed,
    is_container,
)

if TYPE_CHECKING:
    from flows.runner import Runner

log = logging.getLogger(__name__)

#: Marks a waiting step that waits for its next try (in its recorded output).
RETRY_WAIT = "retry_wait"
#: The deadline of a waiting step with a `timeout` (in its recorded output, ISO text).
DEADLINE = "timeout_at"
#: Steps with a `timeout` of their own meaning (they end `expired`, or bound each HTTP try).
OWN_TIMEOUT = frozenset({"approval", "ask", "http_request"})
#: Slack's error codes that mean "try again later".
SLACK_TRANSIENT = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
    }
)


class Continued:
    """The step failed, was recorded, and the run goes on (`on_error: continue`)."""


CONTINUED = Continued()


# ------------------------------------------------------------------ classifying errors


def transient_status(status: int | None) -> bool:
    return status is not None and (status in (408, 429) or 500 <= status < 600)


def retry_after_seconds(value: Any, now: datetime | None = None) -> float | None:
    """A Retry-After header: seconds, or an HTTP date."""
    if value is None:
        return None
    text = str(value).strip()
    try:
        return max(0.0, float(text))
    except ValueError:
        pass
    try:
        moment = email.utils.parsedate_to_datetime(text)
    except (TypeError, ValueError):
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=timezone.utc)
    return max(0.0, (moment - (now or datetime.now(timezone.utc))).total_seconds())


def classify(exc: BaseException) -> tuple[bool, float | None]:
    """(transient, retry after) of an unexpected exception an executor let through: a
    timeout, a lost connection, or Slack's Web API answering 429/5xx or `ratelimited`."""
    if isinstance(exc, (asyncio.TimeoutError, TimeoutError, ConnectionError)):
        return True, None
    response = getattr(exc, "response", None)
    status = getattr(response, "status_code", None)
    headers = getattr(response, "headers", None) or {}
    after = retry_after_seconds(headers.get("Retry-After") or headers.get("retry-after"))
    if isinstance(status, int) and transient_status(status):
        return True, after
    code = None
    getter = getattr(response, "get", None)
    if callable(getter):
        try:
            code = getter("error")
        except Exception:
            code = None
    if isinstance(code, str) and code in SLACK_TRANSIENT:
        return True, after
    # aiohttp's connection errors are OSErrors; a file or permission error is not.
    if isinstance(exc, OSError) and type(exc).__module__.startswith("aiohttp"):
        return True, None
    return False, None


def mark(failure: _Failure, exc: BaseException) -> _Failure:
    """Carry the executor's classification (and failed output) on the run's failure."""
    if isinstance(exc, StepFailed):
        failure.transient = exc.transient
        failure.retry_after = exc.retry_after
        if exc.output and failure.result is not None:
            failure.result.output = {**exc.output, **failure.result.output}
    else:
        failure.transient, failure.retry_after = classify(exc)
    return failure


# ------------------------------------------------------------------ the guard


def _tries(recorded: StepResult | None) -> tuple[int, list[dict[str, Any]]]:
    """(tries made so far, their errors) from a step waiting for its next try."""
    if recorded is None or not recorded.output.get(RETRY_WAIT):
        return 0, []
    tries = [dict(t) for t in recorded.output.get("tries") or [] if isinstance(t, Mapping)]
    return int(recorded.output.get("attempts") or len(tries)), tries


def _timeout(step: Any) -> timedelta | None:
    value = getattr(step, "timeout", None)
    if step.type in OWN_TIMEOUT or not isinstance(value, str):
        return None
    return parse_duration(value)


def _deadline(recorded: StepResult | None) -> datetime | None:
    raw = recorded.output.get(DEADLINE) if recorded is not None else None
    if isinstance(raw, datetime):
        return raw if raw.tzinfo else raw.replace(tzinfo=timezone.utc)
    if isinstance(raw, str):
        try:
            return datetime.fromisoformat(raw)
        except ValueError:
            return None
    return None


def _due(runner: Runner, drive: _Drive, key: str, recorded: StepResult) -> bool:
    """Has the wait of `recorded` ended (its wake-up passed, or the run was woken for it)?"""
    if drive.wake is not None and drive.wake[0] == key:
        drive.wake = None
    return recorded.wake_at is None or recorded.wake_at <= runner.clock.now()


async def _execute(
    runner: Runner,
    drive: _Drive,
    step: Any,
    executor: StepExecutor | None,
    recorded: StepResult | None,
    started_at: datetime,
    ctx: StepContext,
) -> Outcome:
    """One try, bounded by the step's `timeout` when it executes (not containers)."""
    limit = _timeout(step)
    container = is_container(executor)
    if limit is not None and container:
        return await bounded_container(
            runner, drive, step, cast(StepExecutor, executor), recorded, started_at, ctx, limit
        )
    waiting = recorded is not None and recorded.status == "waiting"
    deadline = _deadline(recorded)
    if waiting and deadline is not None and deadline <= runner.clock.now():
        raise runner._failure(ctx.step_id, step.type, started_at, f"timed out after {step.timeout}")
    if limit is None or waiting or container:
        outcome = await runner._outcome(drive, step, executor, recorded, started_at, ctx)
    else:
        try:
            outcome = await asyncio.wait_for(
                runner._outcome(drive, step, executor, recorded, started_at, ctx),
                limit.total_seconds(),
            )
        except asyncio.TimeoutError:
            message = f"timed out after {step.timeout}"
            failure = runner._failure(ctx.step_id, step.type, started_at, message)
            failure.transient = True
            raise failure from None
    if isinstance(outcome, Park) and limit is not None:
        # A waiting step with a timeout: wake at its deadline at the latest.
        end = deadline or (started_at + limit)
        wake = end if outcome.wake_at is None else min(end, outcome.wake_at)
        outcome = Park(wake, outcome.waiting_for, {**outcome.output, DEADLINE: end.isoformat()})
    return outcome


def replay_failure(step: Any, key: str, recorded: StepResult) -> None:
    """A step recorded failed is met again (a resumed run): the run goes on past it with
    `on_error: continue`, else it fails again with the recorded error."""
    if getattr(step, "on_error", "fail") != "continue":
        raise _Failure(key, f"step {key}: {recorded.error}", recorded)


async def _after_failure(
    runner: Runner,
    drive: _Drive,
    step: Any,
    failure: _Failure,
    attempt: int,
    tries: list[dict[str, Any]],
    ctx: StepContext,
) -> Park | Continued:
    """A try failed: wait for the next one, or record the failure and go on; else raise."""
    if failure.result is None:  # the step's result could not be recorded: not retried
        raise failure
    policy: RetryPolicy | None = getattr(step, "retry", None)
    key = ctx.step_id
    tries.append({"attempt": attempt, "error": failure.result.error, "at": ctx.now()})
    if policy is not None and failure.transient and attempt < policy.attempts:
        wait = policy.wait_before(attempt + 1)
        if failure.retry_after is not None:
            wait = max(wait, timedelta(seconds=failure.retry_after))
        log.info("run %s: step %s try %d failed; next in %s", drive.run.id, key, attempt, wait)
        return Park(ctx.now() + wait, None, {RETRY_WAIT: True, "attempts": attempt, "tries": tries})
    if policy is not None or len(tries) > 1:
        failure.result.output = {**failure.result.output, "attempts": attempt, "tries": tries}
    if getattr(step, "on_error", "fail") != "continue":
        raise failure
    drive.run.steps[key] = failure.result
    await runner._write_step(drive, failure.result)
    return CONTINUED


async def guarded_outcome(
    runner: Runner,
    drive: _Drive,
    step: Any,
    executor: StepExecutor | None,
    recorded: StepResult | None,
    started_at: datetime,
    ctx: StepContext,
) -> Outcome | Continued:
    """The step's outcome with its retry, timeout and on_error applied: Done, Park (also
    a wait for the next try), CONTINUED (failed and recorded; go on), or a `_Failure`."""
    key = ctx.step_id
    made, tries = _tries(recorded)
    if made:
        assert recorded is not None
        if not _due(runner, drive, key, recorded):
            return Park(recorded.wake_at, None, dict(recorded.output))
        recorded = None  # the next try starts afresh
    policy: RetryPolicy | None = getattr(step, "retry", None)
    attempt = made + 1
    try:
        outcome = await _execute(runner, drive, step, executor, recorded, started_at, ctx)
    except _Failure as failure:
        return await _after_failure(runner, drive, step, failure, attempt, tries, ctx)
    if isinstance(outcome, Done) and (policy is not None or tries):
        extra: dict[str, Any] = {"attempts": attempt}
        if tries:
            extra["tries"] = tries
        outcome = Done({**outcome.output, **extra})
    return outcome


__all__ = [
    "CONTINUED",
    "Continued",
    "classify",
    "guarded_outcome",
    "mark",
    "retry_after_seconds",
    "transient_status",
]
