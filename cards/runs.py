"""Run cards: the notify-channel message, the result for the starter, the history list,
the run details modal and the "Run flow" modal that asks for inputs."""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ButtonElement,
    ConversationFilter,
    ConversationSelectElement,
    DatePickerElement,
    DividerBlock,
    HeaderBlock,
    InputBlock,
    NumberInputElement,
    Option,
    PlainTextInputElement,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
    UserSelectElement,
)
from slack_sdk.models.views import View

from cards.common import Message, clip, context, escape, message, section
from cards.run_control import attempts_text, control_blocks, control_context, control_lines
from cards.run_steps import keys_of, places, step_name, step_order
from flows.definition import FlowInput
from flows.durations import format_duration
from flows.errors import FlowbotError
from flows.records import RunRecord, StepResult
from flows.run_model import CancelRequest, RunRefused
from flows.run_requests import (
    FlowGone,
    HistoryNotAllowed,
    RunHidden,
    RunNotAllowed,
    RunNotFound,
)

# action_id / callback_id the handlers listen to
RUN_DETAILS_ACTION = "run_details"
RUN_MODAL_CALLBACK = "run_flow_modal"
INPUT_ACTION = "value"

STATUS_EMOJI = {
    "queued": ":clock3:",
    "running": ":arrows_counterclockwise:",
    "waiting": ":hourglass_flowing_sand:",
    "succeeded": ":white_check_mark:",
    "failed": ":x:",
    "cancelled": ":no_entry_sign:",
    "skipped": ":fast_forward:",
}
STATUS_WORD = {
    "queued": "queued",
    "running": "running",
    "waiting": "waiting",
    "succeeded": "succeeded",
    "failed": "failed",
    "cancelled": "cancelled",
}
BOOLEAN_OPTIONS = (("yes", "Yes"), ("no", "No"))


def input_block_id(input_id: str) -> str:
    return f"input_{input_id}"


def when(moment: datetime | None) -> str:
    """A time Slack shows in each reader's timezone (with a UTC fallback)."""
    if moment is None:
        return "–"
    fallback = moment.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(moment.timestamp())}^{{date_short_pretty}} {{time}}|{fallback}>"


def duration(run: RunRecord, now: datetime) -> str:
    start = run.started_at or run.created_at
    end = run.finished_at or now
    seconds = (end - start).total_seconds()
    if seconds < 1:
        return "<1s"
    return format_duration(end - start)


def starter(run: RunRecord) -> str:
    if run.trigger.type == "call":
        parent = run.trigger.data.get("parent_flow", "another flow")
        by = f" (started by <@{run.started_by}>)" if run.started_by else ""
        return f"run `{escape(str(run.parent_run))}` of *{escape(str(parent))}*{by}"
    if run.started_by:
        return f"<@{run.started_by}>"
    kind = run.trigger.type
    return {"schedule": "the schedule", "webhook": "a webhook"}.get(kind, f"a {kind} event")


def _step_order(run: RunRecord) -> list[str]:
    return step_order(run)


def _step_line(result: StepResult, run: RunRecord, where: dict[str, str] | None = None) -> str:
    name = step_name(result.step_id, where if where is not None else places(run.definition))
    if result.status == "waiting" and run.status == "cancelled":
        # The run was cancelled while this step waited (a delay, an approval).
        return f"{STATUS_EMOJI['cancelled']} {name} {result.type} — cancelled"
    emoji = STATUS_EMOJI.get(result.status, ":grey_question:")
    line = f"{emoji} {name} {result.type}"
    if result.status == "waiting":
        until = result.output.get("until")
        line += f" — waiting until {escape(str(until))}" if until else " — waiting"
    if result.output.get("branch"):
        line += f" → {result.output['branch']}"
    if result.type == "switch" and result.status == "succeeded":
        line += f" → {result.output.get('case') or 'no case'}"
    if result.type == "for_each" and "count" in result.output:
        line += f" — {result.output['count']} items"
    line += attempts_text(result)
    if result.error:
        line += f" — {escape(clip(result.error, 300))}"
    return line


def cancel_reason(request: CancelRequest) -> str:
    """The error a cancelled run records ("the flow was deleted by <@U…>"): the words
    the runner is given (`Runner(describe_cancel=…)`) for `request`."""
    return f"{request.reason} by <@{request.by}>" if request.by else request.reason


def _cancel_reason(run: RunRecord, limit: int = 2000) -> str:
    """Why a run was cancelled: `cancel_reason`'s own words, so their mention is kept
    (a step's error, quoting the outside world, is escaped)."""
    return clip(run.error or "cancelled", limit)


def _headline(run: RunRecord) -> str:
    emoji = STATUS_EMOJI.get(run.status, "")
    return f"{emoji} Run of *{escape(run.flow_name)}* {STATUS_WORD.get(run.status, run.status)}"


def run_notice(run: RunRecord, now: datetime) -> Message:
    """The one message per run in the flow's notify channel, updated as it goes."""
    where = places(run.definition)
    lines = [_step_line(run.steps[s], run, where) for s in _step_order(run)]
    total = sum(1 for _ in run.definition.walk_steps())
    blocks = [section(_headline(run) + f" (started by {starter(run)})")]
    if lines:
        shown = lines[-15:]
        if len(lines) > len(shown):
            shown.insert(0, f"… {len(lines) - len(shown)} earlier steps")
        blocks.append(section("\n".join(shown)))
    if run.status == "failed":
        blocks.append(
            section(
                f":warning: Failed at step `{escape(run.error_step or '?')}`: "
                f"{escape(clip(run.error or 'unknown error', 2000))}"
            )
        )
    if run.status == "cancelled":
        blocks.append(section(f":no_entry_sign: Cancelled: {_cancel_reason(run)}"))
    blocks += control_context(run)
    done = sum(1 for r in run.steps.values() if r.status in ("succeeded", "skipped"))
    blocks.append(
        context(
            f"Run `{run.id}` · started {when(run.started_at)} · {duration(run, now)}"
            f" · {done} step{'s' if done != 1 else ''} done ({total} in the flow)"
        )
    )
    blocks += control_blocks(run)  # Cancel while it runs; Retry and Rerun once failed
    text = f"Run of {run.flow_name} {run.status}"
    if run.status == "failed":
        text += f" at step {run.error_step}: {run.error}"
    elif run.status == "cancelled" and run.error:
        text += f": {run.error}"
    return message(text, *blocks)


def run_result(run: RunRecord, now: datetime) -> Message:
    """What the person who started a run is told when it ends."""
    if run.status == "succeeded":
        text = f"Your run of {run.flow_name} succeeded in {duration(run, now)}."
        body = f":white_check_mark: Your run of *{escape(run.flow_name)}* succeeded"
        body += f" in {duration(run, now)}."
    elif run.status == "cancelled":
        text = f"Your run of {run.flow_name} was cancelled: {_cancel_reason(run)}."
        body = f"{STATUS_EMOJI['cancelled']} Your run of *{escape(run.flow_name)}* was cancelled:"
        body += f" {_cancel_reason(run)}."
    else:
        text = f"Your run of {run.flow_name} {run.status}"
        body = f"{STATUS_EMOJI.get(run.status, '')} Your run of *{escape(run.flow_name)}*"
        body += f" {run.status}"
        if run.error:
            text += f": {run.error}"
            body += f" at step `{escape(run.error_step or '?')}`:\n>{escape(clip(run.error, 2000))}"
        else:
            body += "."
    return message(text, section(body), context(f"Run `{run.id}` · `/flow history` shows it"))


def run_started(flow_name: str, has_wait: bool) -> Message:
    text = f"Running {flow_name}…"
    tail = " It waits at some steps: you will get the result when it ends." if has_wait else ""
    return message(text, section(f":arrow_forward: Running *{escape(flow_name)}*…{tail}"))


def running_notice(flow_name: str) -> str:
    """A run started from a button, with no form to fill: where its result will come."""
    return (
        f":arrow_forward: *{escape(flow_name)}* is running. "
        "You will get the result in a direct message."
    )


def history_message(
    flow_name: str, runs: Sequence[RunRecord], now: datetime, own_only: bool
) -> Message:
    whose = "Your runs" if own_only else "Last runs"
    header = f"{whose} of *{escape(flow_name)}*"
    if not runs:
        return message(
            f"{flow_name} has no runs yet.",
            section(f"{header}: none yet. Start one with `/flow run {escape(flow_name)}`."),
        )
    blocks: list[dict[str, Any]] = [section(header)]
    for run in runs:
        line = (
            f"{STATUS_EMOJI.get(run.status, '')} *{run.status}* · `{run.id}` · {starter(run)}"
            f" · {when(run.started_at or run.created_at)} · {duration(run, now)}"
        )
        if control_lines(run):
            line += "\n" + "\n".join(control_lines(run))
        if run.status == "failed" and run.error:
            line += f"\n{escape(clip(run.error, 200))}"
        elif run.status == "cancelled":
            line += f"\n{_cancel_reason(run, 200)}"
        blocks.append(
            SectionBlock(
                text={"type": "mrkdwn", "text": clip(line)},
                accessory=ButtonElement(text="Details", action_id=RUN_DETAILS_ACTION, value=run.id),
            ).to_dict()
        )
    if own_only:
        blocks.append(context("You see the runs you started; the owners see every run."))
    return message(f"{whose} of {flow_name}: {len(runs)}", *blocks)


def _summary(output: Mapping[str, Any], limit: int = 300) -> str:
    if not output:
        return ""
    try:
        text = json.dumps(output, ensure_ascii=False, default=str, sort_keys=True)
    except (TypeError, ValueError):
        text = str(output)
    return clip(text, limit)


def _result_block(result: StepResult, run: RunRecord, where: dict[str, str]) -> dict[str, Any]:
    line = _step_line(result, run, where)
    hidden = ("branch", "items", "results", "branches")
    summary = _summary({k: v for k, v in result.output.items() if k not in hidden})
    if summary:
        line += f"\n```{summary.replace('```', '`‵`')}```"
    return section(line)


def _many_blocks(
    run: RunRecord, step: Any, keys: list[str], where: dict[str, str]
) -> list[dict[str, Any]]:
    """A step of a long loop: how many iterations ended how, and those that failed or wait."""
    results = [run.steps[k] for k in keys]
    counts = {r.status: sum(1 for x in results if x.status == r.status) for r in results}
    said = ", ".join(f"{n} {status}" for status, n in counts.items())
    name = step_name(step.id, where)
    blocks = [section(f":repeat: {name} {step.type} — {len(keys)} iterations: {said}")]
    odd = [r for r in results if r.status != "succeeded"][:5]
    return blocks + [_result_block(r, run, where) for r in odd]


def _step_blocks(run: RunRecord) -> list[dict[str, Any]]:
    """A section per step; a step in a loop body one per iteration (a long loop: the
    counts, and the iterations that did not succeed)."""
    where = places(run.definition)
    order = step_order(run)
    blocks: list[dict[str, Any]] = []
    for step in run.definition.walk_steps():
        keys = keys_of(run, step.id, order)
        if not keys:
            status = "not run" if run.finished else "not yet"
            name = step_name(step.id, where)
            blocks.append(section(f":white_circle: {name} {step.type} — {status}"))
        elif len(keys) > 5:
            blocks += _many_blocks(run, step, keys, where)
        else:
            blocks += [_result_block(run.steps[k], run, where) for k in keys]
        if len(blocks) >= 88:
            blocks = blocks[:88]
            blocks.append(context("… more steps not shown"))
            break
    if run.outputs:
        blocks.append(
            section("*Outputs*\n```" + _summary(run.outputs).replace("```", "`‵`") + "```")
        )
    return blocks


def run_details_view(run: RunRecord, now: datetime) -> dict[str, Any]:
    blocks: list[dict[str, Any]] = [
        section(_headline(run)),
        context(
            f"Run `{run.id}` · version {run.flow_version} · started by {starter(run)}"
            f" · {when(run.started_at or run.created_at)} · {duration(run, now)}"
        ),
    ]
    if run.inputs:
        lines = [f"`{escape(k)}`: {escape(clip(str(v), 200))}" for k, v in run.inputs.items()]
        blocks.append(section("*Inputs*\n" + "\n".join(lines)))
    else:
        blocks.append(section("*Inputs*\nnone"))
    blocks += control_context(run)
    blocks.append(DividerBlock().to_dict())
    blocks += _step_blocks(run)
    if run.status == "cancelled":
        why = _cancel_reason(run, 2500)
        blocks.append(section(f"{STATUS_EMOJI['cancelled']} *Cancelled*: {why}"))
    elif run.error:
        blocks.append(
            section(
                f":warning: *Error* at step `{escape(run.error_step or '?')}`:\n"
                f"{escape(clip(run.error, 2500))}"
            )
        )
    view = View(
        type="modal",
        title=clip(f"Run of {run.flow_name}", 24),
        close="Close",
        blocks=blocks[:100],
    )
    return view.to_dict()


def _boolean_element(spec: FlowInput, value: Any, given: bool) -> dict[str, Any]:
    options = [Option(value=v, text=label) for v, label in BOOLEAN_OPTIONS]
    initial = None
    if isinstance(value, bool):
        initial = options[0] if value else options[1]
    return RadioButtonsElement(
        action_id=INPUT_ACTION, options=options, initial_option=initial
    ).to_dict()


def _number_element(spec: FlowInput, value: Any, given: bool) -> dict[str, Any]:
    return NumberInputElement(
        action_id=INPUT_ACTION,
        is_decimal_allowed=True,
        initial_value=str(value) if given else None,
    ).to_dict()


def _date_element(spec: FlowInput, value: Any, given: bool) -> dict[str, Any]:
    return DatePickerElement(
        action_id=INPUT_ACTION, initial_date=str(value) if given else None
    ).to_dict()


def _user_element(spec: FlowInput, value: Any, given: bool) -> dict[str, Any]:
    return UserSelectElement(
        action_id=INPUT_ACTION, initial_user=str(value) if given else None
    ).to_dict()


def _channel_element(spec: FlowInput, value: Any, given: bool) -> dict[str, Any]:
    channel = str(value) if given else ""
    return ConversationSelectElement(
        action_id=INPUT_ACTION,
        initial_conversation=channel if channel[:1] in ("C", "G") else None,
        filter=ConversationFilter(include=["public", "private"], exclude_bot_users=True),
    ).to_dict()


def _choice_element(spec: FlowInput, value: Any, given: bool) -> dict[str, Any]:
    options = [Option(value=c, text=clip(c, 75)) for c in spec.choices[:100]]
    chosen = next((o for o in options if o.value == value), None)
    return StaticSelectElement(
        action_id=INPUT_ACTION, options=options, initial_option=chosen
    ).to_dict()


def _text_element(spec: FlowInput, value: Any, given: bool) -> dict[str, Any]:
    return PlainTextInputElement(
        action_id=INPUT_ACTION, initial_value=str(value) if given else None
    ).to_dict()


# The modal's element for each input type (text for any other).
_ELEMENTS = {
    "number": _number_element,
    "boolean": _boolean_element,
    "date": _date_element,
    "user": _user_element,
    "channel": _channel_element,
    "choice": _choice_element,
}


def _element(spec: FlowInput, value: Any) -> dict[str, Any]:
    build = _ELEMENTS.get(spec.type, _text_element)
    return build(spec, value, value is not None and value != "")


def run_modal(
    flow_name: str,
    inputs: Sequence[FlowInput],
    values: Mapping[str, Any],
    private_metadata: str,
    description: str | None = None,
) -> dict[str, Any]:
    """The "Run flow" modal: one typed field per input, prefilled with `values`."""
    blocks: list[dict[str, Any]] = [
        HeaderBlock(text=clip(flow_name, 150)).to_dict(),
    ]
    if description:
        blocks.append(section(escape(description)))
    for spec in inputs[:90]:
        value = values.get(spec.id, spec.default)
        blocks.append(
            InputBlock(
                block_id=input_block_id(spec.id),
                label=clip(spec.label or spec.id, 2000),
                element=_element(spec, value),
                optional=not spec.required,
                hint=clip(spec.description, 2000) if spec.description else None,
            ).to_dict()
        )
    view = View(
        type="modal",
        callback_id=RUN_MODAL_CALLBACK,
        title="Run flow",
        submit="Run",
        close="Cancel",
        private_metadata=private_metadata,
        blocks=blocks,
    )
    return view.to_dict()


# A submitted "Run flow" form the bot has no record of (issue 19: not opened by this
# person in this workspace, or over a day old).
FORM_NOT_FOUND = "This form is no longer valid. Start the flow again."


def notice_view(title: str, text: str) -> dict[str, Any]:
    """A small modal that only says something (a refusal after a Home tab click)."""
    return View(type="modal", title=clip(title, 24), close="OK", blocks=[section(text)]).to_dict()


# ---------------------------------------------------------------------------- refusals

FLOW_GONE = "This flow no longer exists: it was deleted."

_NOT_ALLOWED = {
    "automated": "{name} is an automated flow: it runs when its trigger fires, not by hand.",
    "owners_only": "Only the owners of {name} can run this scheduled flow now.",
    "not_shared": "You can't run {name}: ask an owner to share it with you.",
    "disabled": "{name} is turned off. An owner can turn it on with `/flow on`.",
}


def describe_runs_error(error: FlowbotError) -> str | None:
    """Words for the refusals of `flows.run_requests` and the runner (`cards.errors`)."""
    if isinstance(error, RunNotAllowed):
        template = _NOT_ALLOWED.get(error.why, _NOT_ALLOWED["not_shared"])
        return template.format(name=f"*{escape(error.flow_name)}*")
    if isinstance(error, RunRefused):
        return f"the flow {escape(error.flow_name)} is {error.why}"
    if isinstance(error, FlowGone):
        return FLOW_GONE
    if isinstance(error, HistoryNotAllowed):
        return f"You can't see the runs of *{escape(error.flow_name)}*."
    if isinstance(error, RunNotFound):
        return "This run no longer exists."
    if isinstance(error, RunHidden):
        return "You can't see this run."
    return None


# The modal widget of one input (also the `ask` step's form, `cards.asks`).
input_element = _element
