"""Messages about flows: show, list, export, on/off, delete; the catalog's refusals."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from cards.common import (
    MESSAGE_BLOCK_LIMIT,
    SECTION_TEXT_LIMIT,
    Message,
    actions,
    button,
    clip,
    context,
    escape,
    message,
    section,
)
from cards.control_steps import CONTROL_STEPS, control_bodies, control_summary, failure_policy
from cards.slack_steps import slack_step_summary
from flows.catalog import CreationRefused, NameTaken, NotAWebhookFlow, VersionConflict
from flows.definition import (
    ApprovalStep,
    AskStep,
    ConditionStep,
    DelayStep,
    FlowDefinition,
    HttpRequestStep,
    ManualTrigger,
    MemberJoinedTrigger,
    MessageTrigger,
    PostMessageStep,
    ReactionTrigger,
    ScheduleTrigger,
    SendDmStep,
    SetVariableStep,
    Step,
    WebhookTrigger,
)
from flows.errors import FlowbotError
from flows.records import FlowRecord
from flows.slack_ids import mention, parse_principal

DELETE_CONFIRM_ACTION = "flow_delete_confirm"
DELETE_CANCEL_ACTION = "flow_delete_cancel"

# One exported message stays well under Slack's total size for blocks in a message.
DEFAULT_ALERT_AFTER = FlowDefinition.model_fields["alert_after"].default
EXPORT_CHARS_PER_BLOCK = 2800
EXPORT_BLOCKS_PER_MESSAGE = 4
# A slash command's response_url takes five answers; keep one for errors.
EXPORT_MAX_MESSAGES = 4

_KIND_LABELS = {
    "instant": "Instant (a button)",
    "scheduled": "Scheduled",
    "automated": "Automated",
}


def describe_trigger(flow: FlowRecord) -> str:
    trigger = flow.definition.trigger
    if isinstance(trigger, ManualTrigger):
        return "On demand: `/flow run`, a button, a shared link"
    if isinstance(trigger, ScheduleTrigger):
        when = f"cron `{trigger.cron}`" if trigger.cron else f"every {trigger.every}"
        return f"Schedule: {when} ({trigger.timezone}, missed runs: {trigger.misfire})"
    if isinstance(trigger, MessageTrigger):
        return f"A message in {escape(trigger.channel)} matching `{escape(trigger.pattern)}`"
    if isinstance(trigger, ReactionTrigger):
        where = f" in {escape(trigger.channel)}" if trigger.channel else ""
        return f"A :{trigger.emoji}: reaction{where}"
    if isinstance(trigger, MemberJoinedTrigger):
        return f"Someone joins {escape(trigger.channel)}"
    if isinstance(trigger, WebhookTrigger):
        return f"Webhook: `POST /hooks/{flow.id}` with the flow's token"
    return escape(str(getattr(trigger, "type", "?")))


def _shown_principal(entry: str) -> str:
    """A person, group or channel as Slack shows it (a mention); anything else (`#name`,
    a template) escaped."""
    principal = parse_principal(entry)
    return mention(principal) if principal else escape(clip(entry, 60))


def _ask_summary(step: AskStep) -> str:
    """Mentions stay mentions (Slack renders them); the rest is escaped."""
    shown = [_shown_principal(entry) for entry in step.to[:10]]
    more = f" and {len(step.to) - 10} more" if len(step.to) > 10 else ""
    title = escape(clip(step.title, 80))
    return f"ask {', '.join(shown)}{more} to fill in: {title} ({len(step.fields)} fields)"


def _step_summary(step: Step) -> str:
    if isinstance(step, AskStep):
        return _ask_summary(step)
    slack = slack_step_summary(step)
    if slack is not None:
        what = slack
    elif isinstance(step, PostMessageStep):
        what = f"post in {step.channel}"
    elif isinstance(step, SendDmStep):
        what = f"DM {step.user}"
    elif isinstance(step, HttpRequestStep):
        what = f"{step.method} {step.path} via `{step.connection}`"
    elif isinstance(step, ApprovalStep):
        what = f"approval ({step.mode.replace('_', ' ')}): {step.title}"
    elif isinstance(step, ConditionStep):
        what = f"if {step.if_}"
    elif isinstance(step, DelayStep):
        what = f"wait {step.duration}" if step.duration else f"wait until {step.until}"
    elif isinstance(step, SetVariableStep):
        what = f"set vars.{step.name}"
    elif step.type in CONTROL_STEPS:
        what = control_summary(step)
    else:
        what = str(getattr(step, "type", "?"))
    return clip(escape(what), 120)


def describe_steps(steps: Sequence[Step], depth: int = 0) -> list[str]:
    lines: list[str] = []
    pad = "    " * depth
    for index, step in enumerate(steps, start=1):
        policy = escape(failure_policy(step))
        lines.append(f"{pad}{index}. `{step.id}` {step.type}: {_step_summary(step)}{policy}")
        if isinstance(step, ConditionStep):
            if step.then:
                lines.append(f"{pad}    _then_")
                lines += describe_steps(step.then, depth + 1)
            if step.else_:
                lines.append(f"{pad}    _else_")
                lines += describe_steps(step.else_, depth + 1)
        for label, body in control_bodies(step):
            lines.append(f"{pad}    _{label}_")
            lines += describe_steps(body, depth + 1)
    return lines


def _inputs(definition: FlowDefinition) -> str:
    if not definition.inputs:
        return "none"
    parts = []
    for item in definition.inputs:
        required = ", required" if item.required else ""
        parts.append(f"`{item.id}` ({item.type}{required})")
    return ", ".join(parts)


def _policy_facts(definition: FlowDefinition) -> list[str]:
    """A schedule's `overlap`, `jitter` and `catchup_window`, any trigger's `when`, and
    `alert_after` when it is not the default (SPEC §14)."""
    facts = []
    trigger = definition.trigger
    if isinstance(trigger, ScheduleTrigger):
        parts = [f"overlap `{trigger.overlap}`", f"jitter {trigger.jitter or 'none'}"]
        parts.append(f"catch-up window {trigger.catchup_window}")
        facts.append(f"*Schedule policies:* {' · '.join(parts)}")
    if trigger.when is not None:
        facts.append(f"*Only when:* `{escape(trigger.when)}` (else no run; `/flow why`)")
    if definition.concurrency:
        facts.append(
            f"*Concurrency:* at most {definition.concurrency} run(s) at once, others queue"
        )
    alert_after = definition.alert_after
    if alert_after != DEFAULT_ALERT_AFTER:
        facts.append(
            f"*Failure alerts:* after {alert_after} failed runs in a row"
            if alert_after
            else "*Failure alerts:* off"
        )
    return facts


def flow_card(flow: FlowRecord, next_run: datetime | None) -> Message:
    definition = flow.definition
    owners = [flow.creator, *[p for p in flow.principals("owner") if p != flow.creator]]
    runners = flow.principals("runner")
    state = ":large_green_circle: on" if flow.enabled else ":white_circle: off"
    head = f"*{escape(flow.name)}*  ·  {state}  ·  version {flow.version}"
    if definition.description:
        head += f"\n{escape(definition.description)}"
    facts = [
        f"*Kind:* {_KIND_LABELS.get(flow.kind, flow.kind)}",
        f"*Trigger:* {describe_trigger(flow)}",
        f"*Inputs:* {_inputs(definition)}",
        f"*Owners:* {', '.join(mention(p) for p in owners)}",
    ]
    if runners:
        facts.append(f"*Run-only:* {', '.join(mention(p) for p in runners)}")
    if definition.notify:
        facts.append(f"*Notifies:* {escape(definition.notify)}")
    facts += _policy_facts(definition)
    if isinstance(definition.trigger, ScheduleTrigger):
        if not flow.enabled:
            facts.append("*Next run:* none while the flow is off")
        elif next_run is not None:
            local = next_run.astimezone(definition.trigger.zone).strftime("%a %H:%M %Z")
            zone = definition.trigger.timezone
            facts.append(f"*Next run:* {_when(next_run)} ({local} in {zone}; `/flow next`)")
    blocks = [section(head), section("\n".join(facts))]
    blocks += [section(text) for text in _chunks(describe_steps(definition.steps), "*Steps*")]
    blocks.append(context(f"Flow id `{flow.id}` · last saved by <@{flow.updated_by}>"))
    return message(f"Flow {flow.name}", *blocks[:MESSAGE_BLOCK_LIMIT])


def _when(moment: datetime) -> str:
    stamp = int(moment.timestamp())
    fallback = moment.strftime("%Y-%m-%d %H:%M %Z")
    return f"<!date^{stamp}^{{date_short_pretty}} {{time}}|{fallback}>"


def _chunks(lines: Sequence[str], title: str, limit: int = SECTION_TEXT_LIMIT - 100) -> list[str]:
    """Lines grouped into section-sized texts, the first one headed by `title`."""
    chunks: list[str] = []
    current = title
    for line in lines:
        if len(current) + len(line) + 1 > limit:
            chunks.append(current)
            current = ""
        current = f"{current}\n{line}" if current else line
    if current:
        chunks.append(current)
    return chunks


def _flow_line(flow: FlowRecord) -> str:
    state = "on" if flow.enabled else "off"
    return f"• *{escape(flow.name)}* · {flow.kind} · {state} · v{flow.version}"


def flow_list(owned: Sequence[FlowRecord], shared: Sequence[FlowRecord]) -> Message:
    if not owned and not shared:
        return message(
            "You have no flows yet.",
            section(
                "You have no flows yet. Start one with `/flow new` (from a template), "
                "or paste a definition with `/flow import`."
            ),
        )
    blocks: list[dict[str, Any]] = []
    if owned:
        blocks += [section(t) for t in _chunks([_flow_line(f) for f in owned], "*Flows you own*")]
    if shared:
        lines = [_flow_line(f) for f in shared]
        blocks += [section(t) for t in _chunks(lines, "*Shared with you (run only)*")]
    blocks = blocks[: MESSAGE_BLOCK_LIMIT - 1]
    blocks.append(context("`/flow show <flow>` for details · `/flow run <flow>` to start one"))
    return message(f"Your flows: {len(owned)} owned, {len(shared)} shared with you", *blocks)


def export_messages(flow: FlowRecord, yaml_text: str) -> list[Message] | None:
    """The YAML in code blocks, split on line ends; None if it does not fit in Slack."""
    pieces: list[str] = []
    current = ""
    for line in yaml_text.splitlines(keepends=True):
        if len(escape(current + line)) > EXPORT_CHARS_PER_BLOCK and current:
            pieces.append(current)
            current = ""
        while len(escape(line)) > EXPORT_CHARS_PER_BLOCK:  # one very long line
            pieces.append(line[: EXPORT_CHARS_PER_BLOCK // 5])
            line = line[EXPORT_CHARS_PER_BLOCK // 5 :]
        current += line
    if current:
        pieces.append(current)
    groups = [
        pieces[i : i + EXPORT_BLOCKS_PER_MESSAGE]
        for i in range(0, len(pieces), EXPORT_BLOCKS_PER_MESSAGE)
    ]
    if len(groups) > EXPORT_MAX_MESSAGES:
        return None
    messages = []
    for number, group in enumerate(groups, start=1):
        part = f" (part {number} of {len(groups)})" if len(groups) > 1 else ""
        blocks = [section(f"```{escape(piece)}```") for piece in group]
        if number == 1:
            note = f"*{escape(flow.name)}*, version {flow.version}{part}: paste into `/flow import`"
            blocks.insert(0, section(note))
        elif part:
            blocks.insert(0, context(f"{escape(flow.name)}{part}"))
        messages.append(message(f"Export of {flow.name}{part}", *blocks))
    return messages


ALREADY_DELETED = "This flow is already deleted; nothing else was changed."


def too_long_to_export(flow: FlowRecord, team_id: str) -> str:
    return (
        "This flow is too long to show in Slack. Export it with "
        f"`python -m bot flows export {flow.id} --team {team_id}`."
    )


def delete_confirm(flow: FlowRecord) -> Message:
    buttons = actions(
        button("Delete", DELETE_CONFIRM_ACTION, flow.id, "danger"),
        button("Cancel", DELETE_CANCEL_ACTION, flow.id),
        block_id="flow_delete",
    )
    return message(
        f"Delete flow {flow.name}?",
        section(
            f"Delete *{escape(flow.name)}* (version {flow.version})? Its definition and earlier "
            "versions are removed; this cannot be undone."
        ),
        buttons,
    )


def deleted(name: str) -> Message:
    return message(f"Deleted flow {name}.", section(f":wastebasket: Deleted *{escape(name)}*."))


def delete_cancelled(name: str | None) -> Message:
    what = f"*{escape(name)}* was not deleted." if name else "Nothing was deleted."
    return message("Nothing was deleted.", section(what))


def toggled(flow: FlowRecord) -> Message:
    if flow.enabled:
        text = f":large_green_circle: *{escape(flow.name)}* is on."
    else:
        text = f":white_circle: *{escape(flow.name)}* is off: it will not run until turned on."
    return message(f"{flow.name} is {'on' if flow.enabled else 'off'}.", section(text))


def command_ref(flow: FlowRecord) -> str:
    """How to name the flow in a slash command (quoted when it has spaces)."""
    name = flow.name
    if any(quote in name for quote in '"“”'):
        return flow.id
    return f'"{name}"' if any(c.isspace() for c in name) else name


def saved(flow: FlowRecord, created: bool, token_shown: bool) -> Message:
    verb = "Created" if created else "Saved"
    text = f":white_check_mark: {verb} *{escape(flow.name)}* (version {flow.version})."
    if token_shown:
        text += " Its webhook token was shown once in the modal."
    ref = escape(command_ref(flow))
    hint = f"`/flow show {ref}` for details"
    if flow.kind == "instant":
        hint += f" · `/flow run {ref}` to start it"
    return message(f"{verb} flow {flow.name}.", section(text), context(hint))


def describe_flows_error(error: FlowbotError) -> str | None:
    """The catalog's own refusals (`cards.errors` words unknown flows and permissions)."""
    if isinstance(error, NameTaken):
        return (
            f"A flow named `{escape(error.name)}` already exists in this workspace (names "
            "ignore case). Pick another name, or change that flow with `/flow edit`."
        )
    if isinstance(error, VersionConflict):
        return (
            f"<@{error.saved_by}> saved version {error.current} of *{escape(error.flow_name)}* "
            f"while you were editing version {error.expected}. Nothing was overwritten and "
            "your text is still here: copy it, reopen `/flow edit`, and apply your changes "
            "to the new version."
        )
    if isinstance(error, CreationRefused):
        who = f" (<@{error.policy_set_by}> set this)" if error.policy_set_by else ""
        return (
            "Only some people may create flows in this workspace, and you are not one of "
            f"them. Ask a workspace admin{who} to add you with `/flow admin creators`."
        )
    if isinstance(error, NotAWebhookFlow):
        return (
            f"*{escape(error.flow_name)}* is not started by a webhook (its trigger is "
            f"`{error.trigger_type}`)."
        )
    return None
