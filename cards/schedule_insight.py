"""Answers of `/flow next`, `/flow why`, `/flow backfill`, and failure alert DMs."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

from cards.common import Message, clip, context, escape, message, section
from flows.errors import FlowbotError
from flows.records import FlowRecord, RunRecord
from flows.run_requests import ConditionNotMet
from flows.schedule_policies import MAX_BACKFILL, BadRange, NotScheduled, TooManySlots
from flows.trigger_log import TriggerDecision

REASONS = {
    "started": "started run `{run}`",
    "filtered": "not run: its `when` condition was false",
    "condition_error": "not run: its `when` condition failed",
    "duplicate": "not run again: a repeated delivery of an event already handled",
    "own_message": "not run: the message was Flowbot's own",
    "disabled": "not run: the flow was turned off",
    "too_deep": "not run: flows triggering flows stop at this depth",
    "overlap_skipped": "skipped: the previous run was still in progress (`overlap: skip`)",
    "queued": "queued behind the run in progress (`overlap: queue`)",
    "missed": "missed while Flowbot was unavailable",
    "wrong_token": "refused: a webhook call with a wrong or missing token",
    "concurrency_limit": "not run: the concurrency limit was reached",
}


def _local(moment: datetime, tz: str) -> str:
    return moment.astimezone(ZoneInfo(tz)).strftime("%a %Y-%m-%d %H:%M %Z")


def next_message(flow_name: str, tz: str, times: list[datetime]) -> Message:
    name = escape(flow_name)
    if not times:
        return message(f"{name} has no next run.", section(f"*{name}* has no next run."))
    lines = "\n".join(f"• {_local(t, tz)}" for t in times)
    text = f"Next runs of {name} ({tz})"
    return message(text, section(f"*Next runs of {name}* ({tz})\n{lines}"))


def decision_line(decision: TriggerDecision, tz: str) -> str:
    words = REASONS.get(decision.reason, decision.reason).format(run=decision.run_id or "?")
    detail = f" — {escape(decision.detail)}" if decision.detail else ""
    return f"• {_local(decision.at, tz)} · {decision.trigger}: {words}{detail}"


EVENT_WORDS = {"message": "messages", "reaction": "reactions", "member_joined": "channel joins"}


def unmatched_line(trigger_type: str, count: int) -> str:
    """The workspace's events of this type that reached no flow's trigger in the last hour."""
    words = EVENT_WORDS.get(trigger_type, f"{trigger_type} events")
    if count == 1:
        words = words[:-1]
    return (
        f"In the last hour, {count:,} {words} in this workspace reached no trigger "
        "(no flow's channel, pattern or emoji matched; counted, not logged one by one)."
    )


def why_message(
    flow_name: str,
    tz: str,
    decisions: list[TriggerDecision],
    unmatched: int | None = None,
    trigger_type: str = "",
) -> Message:
    name = escape(flow_name)
    tail = [context(unmatched_line(trigger_type, unmatched))] if unmatched is not None else []
    if not decisions:
        body = (
            f"*{name}*: nothing reached its trigger in the last 7 days (no matching event, "
            "webhook call or schedule slot)."
        )
        return message(f"{name}: no trigger decisions", section(body), *tail)
    lines = "\n".join(decision_line(d, tz) for d in decisions)
    return message(
        f"Why {name} ran or not",
        section(clip(f"*Last trigger decisions for {name}* (newest first)\n{lines}")),
        *tail,
    )


def backfill_message(
    flow_name: str, tz: str, start: datetime, end: datetime, started: int, already: int
) -> Message:
    name = escape(flow_name)
    text = (
        f":rewind: *{name}*: backfill from {_local(start, tz)} to {_local(end, tz)}: "
        f"{started} run(s) started"
        + (f", {already} slot(s) had run already and were not run again." if already else ".")
    )
    return message(f"{name}: backfill, {started} run(s) started", section(text))


def failing_message(flow: FlowRecord, run: RunRecord, failures: int) -> Message:
    name = escape(flow.name)
    error = escape(run.error or "no error message")
    text = f"{flow.name} has failed {failures} runs in a row."
    body = (
        f":rotating_light: *{name}* has failed {failures} runs in a row. "
        f"Last error (run `{run.id}`): {clip(error, 500)}"
    )
    hint = f"`/flow history {name}` shows the runs; you'll hear when it succeeds again."
    return message(text, section(body), context(hint))


def recovered_message(flow: FlowRecord, run: RunRecord, failures: int) -> Message:
    name = escape(flow.name)
    text = f"{flow.name} succeeded again."
    body = (
        f":white_check_mark: *{name}* succeeded again (run `{run.id}`) after {failures} failures."
    )
    return message(text, section(body))


def describe_schedule_error(error: FlowbotError) -> str | None:
    if isinstance(error, ConditionNotMet):
        return f"*{escape(error.flow_name)}* did not run: its trigger's `when` condition is false."
    if isinstance(error, NotScheduled):
        return f"*{escape(error.flow_name)}* has no schedule."
    if isinstance(error, TooManySlots):
        return (
            f"That range holds {error.count}+ slots of *{escape(error.flow_name)}*; a backfill "
            f"runs at most {MAX_BACKFILL}. Choose a shorter range."
        )
    if isinstance(error, BadRange):
        return (
            f"`{escape(error.text)}` is not a range of past times: write dates like 2024-05-01 "
            "or 2024-05-01T09:00, the first before the second, not in the future."
        )
    return None
