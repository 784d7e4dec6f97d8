"""Run control cards (SPEC §12): the Cancel / Retry / Rerun buttons of a run's notify
message (only those that apply to the run as it is), the answers to `/flow cancel`,
`/flow retry`, `/flow rerun` and those buttons, the refusals' words, and the lines that
history and details add about a run's control (who cancelled it, its retries, the run it
reruns)."""

from __future__ import annotations

from typing import Any

from cards.common import (
    Message,
    actions,
    button,
    clip,
    context,
    escape,
    message,
    section,
    slack_date,
)
from flows.errors import FlowbotError
from flows.records import RunRecord, StepResult
from flows.run_control import Controlled, RunControlRefused

CANCEL_ACTION = "run_cancel"
RETRY_ACTION = "run_retry"
RERUN_ACTION = "run_rerun"
CONTROL_BLOCK = "run_control"


def control_blocks(run: RunRecord) -> list[dict[str, Any]]:
    """Cancel while running, queued or waiting; Retry and Rerun when failed; none else.
    Who may press them is decided when pressed (`flows.run_control`)."""
    if run.status in ("queued", "running", "waiting"):
        elements = [button("Cancel run", CANCEL_ACTION, run.id, style="danger")]
    elif run.status == "failed":
        elements = [
            button("Retry from the failed step", RETRY_ACTION, run.id, style="primary"),
            button("Rerun", RERUN_ACTION, run.id),
        ]
    else:
        return []
    return [actions(*elements, block_id=CONTROL_BLOCK)]


def control_lines(run: RunRecord) -> list[str]:
    """Where the run came from and what was done to it, in words."""
    lines = []
    if run.rerun_of:
        by = run.trigger.data.get("rerun_by")
        who = f" by <@{by}>" if by else ""
        lines.append(f":repeat: Rerun of run `{escape(run.rerun_of)}`{who}")
    for retry in run.retries:
        at = retry.get("at")
        when = f" {slack_date(at)}" if at is not None and hasattr(at, "tzinfo") else ""
        step = retry.get("from_step")
        where = f" from step `{escape(str(step))}`" if step else ""
        lines.append(f":arrow_forward: Retried{where} by <@{retry.get('by')}>{when}")
    if run.status == "cancelled" and run.cancelled_by:
        lines.append(f":no_entry_sign: Cancelled by <@{run.cancelled_by}>")
    return lines


def control_context(run: RunRecord) -> list[dict[str, Any]]:
    """A context block of `control_lines`, if any."""
    lines = control_lines(run)
    return [context("\n".join(lines))] if lines else []


def attempts_text(result: StepResult) -> str:
    """A step tried more than once: its tries, and each failed try's error."""
    tries = [t for t in result.output.get("tries") or [] if isinstance(t, dict)]
    attempts = result.output.get("attempts")
    if not tries and not (isinstance(attempts, int) and attempts > 1):
        return ""
    text = f" — {attempts} tries" if attempts != 1 else " — 1 try"
    if result.status == "waiting" and result.output.get("retry_wait"):
        text += ", waiting for the next"
    for t in tries[-5:]:
        text += f"\n    try {t.get('attempt')}: {escape(clip(str(t.get('error')), 200))}"
    return text


def unknown_run_id(run_id: str) -> str:
    """A typed run id that names no run of the workspace."""
    return (
        f"There is no run `{escape(run_id)}` in this workspace: run ids are shown in "
        "`/flow history`, run details and notifications."
    )


def controlled(done: Controlled) -> Message:
    run = done.run
    if done.action == "cancel":
        if done.stopping:
            text = f"Run `{run.id}` of *{escape(run.flow_name)}* stops after its current step."
        else:
            text = f":no_entry_sign: Run `{run.id}` of *{escape(run.flow_name)}* is cancelled."
    elif done.action == "retry":
        step = run.retries[-1].get("from_step") if run.retries else None
        where = f" from step `{escape(str(step))}`" if step else ""
        queued = " It is queued: the flow's concurrency limit is reached." if run.held else ""
        text = f":arrow_forward: Run `{run.id}` of *{escape(run.flow_name)}* goes on{where}."
        text += queued
    else:
        queued = " (queued: the flow's concurrency limit is reached)" if run.held else ""
        text = (
            f":repeat: Rerunning *{escape(run.flow_name)}* with the same inputs:"
            f" run `{run.id}`{queued}."
        )
    return message(text.replace("*", "").replace("`", ""), section(text))


_OWNERS_OR_STARTER = "Only the flow's owners and whoever started run `{run}` can cancel it."
_RERUN_RIGHTS = (
    "Only the flow's owners, or whoever started run `{run}` (while they may run the flow),"
    " can rerun it."
)
_WHY = {
    ("cancel", "not_allowed"): _OWNERS_OR_STARTER,
    ("retry", "not_allowed"): "Only the flow's owners can retry run `{run}`.",
    ("rerun", "not_allowed"): _RERUN_RIGHTS,
    ("cancel", "finished"): "Run `{run}` has already ended.",
    ("retry", "not_failed"): "Only a failed run can be retried; run `{run}` did not fail.",
    ("retry", "flow_gone"): "The flow of run `{run}` was deleted.",
    ("rerun", "flow_gone"): "The flow of run `{run}` was deleted.",
    ("retry", "disabled"): "The flow of run `{run}` is turned off.",
    ("rerun", "disabled"): "The flow of run `{run}` is turned off.",
}


def describe_run_control_error(error: FlowbotError) -> str | None:
    if not isinstance(error, RunControlRefused):
        return None
    words = _WHY.get((error.action, error.why), "You can't {action} run `{run}`.")
    return words.format(run=escape(error.run_id), action=error.action) + " Nothing was changed."


__all__ = [
    "CANCEL_ACTION",
    "RERUN_ACTION",
    "RETRY_ACTION",
    "attempts_text",
    "control_blocks",
    "control_context",
    "control_lines",
    "controlled",
    "describe_run_control_error",
]
