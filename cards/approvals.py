"""Approval cards: the request with its buttons, the decided message, the comment modal,
notices, `/flow approvals` and the App Home's "Pending approvals" section.

Buttons: `action_id` is `approval:<option label>` and `value` the approval id; with
comments allowed, a "Comment…" button (`approval_comment`) opens a modal with the options
and a comment field. Each approval's buttons are in their own actions block (block_id
`approval:<id>`), so a list can hold several.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ContextBlock,
    HeaderBlock,
    InputBlock,
    MarkdownTextObject,
    Option,
    PlainTextInputElement,
    PlainTextObject,
    RadioButtonsElement,
    SectionBlock,
    StaticSelectElement,
)
from slack_sdk.models.views import View

from cards.common import Message, clip, context, escape, message, section
from cards.people_requests import pending_section, reminder, slack_date
from flows.approval_model import (
    APPROVED,
    CANCELLED,
    DEFAULT_OPTIONS,
    EXPIRED,
    ApprovalError,
    ApprovalRecord,
    ImpossibleQuorum,
    NoApprovers,
    RespondResult,
    TooFewOptions,
    UnknownApproveOption,
    UnknownApprover,
    UnknownChannelName,
)
from flows.errors import FlowbotError

ACTION_PREFIX = "approval:"
COMMENT_BUTTON = "approval_comment"
COMMENT_CALLBACK = "approval_comment"
OPTION_BLOCK = "option"
OPTION_ACTION = "option"
COMMENT_BLOCK = "comment"
COMMENT_ACTION = "comment"
# A /flow approvals answer is one message (50 blocks): list this many, then "and N more".
LIST_LIMIT = 10


def action_id(option: str) -> str:
    return ACTION_PREFIX + option


def option_of(action: str) -> str:
    return action[len(ACTION_PREFIX) :] if action.startswith(ACTION_PREFIX) else action


def _mentions(users: Sequence[str]) -> str:
    return ", ".join(f"<@{u}>" for u in users) or "nobody"


def mode_text(record: ApprovalRecord) -> str:
    if record.mode == "everyone":
        return f"everyone must approve ({len(record.approvers)})"
    if record.mode == "quorum":
        return f"{record.min} of {len(record.approvers)} must approve"
    return "the first to respond decides"


def outcome_emoji(record: ApprovalRecord) -> str:
    if record.outcome == EXPIRED:
        return ":hourglass:"
    if record.outcome == CANCELLED:
        return ":no_entry_sign:"
    return ":white_check_mark:" if record.outcome == APPROVED else ":x:"


def outcome_word(record: ApprovalRecord) -> str:
    return (record.outcome or "pending").capitalize()


def outcome_line(record: ApprovalRecord) -> str:
    """`✅ *Approved* by @bob` / `❌ *Rejected* (Need more info) by @bob` / `⌛ *Expired*…`."""
    if record.outcome == EXPIRED:
        return f"{outcome_emoji(record)} *Expired*: nobody decided in time"
    if record.outcome == CANCELLED:
        return f"{outcome_emoji(record)} {cancelled_text(record)}"
    line = f"{outcome_emoji(record)} *{outcome_word(record)}*"
    if record.option and record.options != list(DEFAULT_OPTIONS):
        line += f" ({escape(record.option)})"
    if record.responder:
        line += f" by <@{record.responder}>"
    return line


def _title(record: ApprovalRecord) -> str:
    # Title and details are the flow author's templates: mentions in them are meant.
    return record.title or "Approval"


def _about(record: ApprovalRecord) -> str:
    parts = []
    if record.flow_name:
        parts.append(f"Flow *{escape(record.flow_name)}*")
    if record.requester:
        parts.append(f"requested by <@{record.requester}>")
    parts.append(mode_text(record))
    return " · ".join(parts)


def _responses_lines(record: ApprovalRecord) -> str:
    lines = []
    for response in record.responses:
        line = f"<@{response.user}>: *{escape(response.response)}*"
        if response.comment:
            line += f" — “{escape(clip(response.comment, 200))}”"
        lines.append(line)
    return "\n".join(lines)


def _style(record: ApprovalRecord, option: str) -> str | None:
    if option == record.approve_option:
        return "primary"
    return "danger" if len(record.options) == 2 else None


def buttons(record: ApprovalRecord) -> dict[str, Any]:
    elements = [
        ButtonElement(
            text=PlainTextObject(text=clip(option, 75)),
            action_id=action_id(option),
            value=record.id,
            style=_style(record, option),
        )
        for option in record.options[:20]
    ]
    if record.allow_comment:
        elements.append(
            ButtonElement(
                text=PlainTextObject(text="Comment…"), action_id=COMMENT_BUTTON, value=record.id
            )
        )
    return ActionsBlock(block_id=f"approval:{record.id}", elements=elements).to_dict()


def _body(record: ApprovalRecord) -> list[dict[str, Any]]:
    blocks = [
        HeaderBlock(text=PlainTextObject(text=clip(record.title or "Approval", 150))).to_dict(),
    ]
    if record.details:
        blocks.append(section(record.details))
    blocks.append(context(_about(record)))
    return blocks


def request_message(record: ApprovalRecord) -> Message:
    """The message with the buttons (a DM to one approver, or a channel post)."""
    blocks = _body(record)
    facts = []
    if record.channel:
        facts.append(f"Approvers: {_mentions(record.approvers)}")
    if record.timeout_at:
        facts.append(f"Expires {slack_date(record.timeout_at)}")
    if facts:
        blocks.append(context("\n".join(facts)))
    if record.responses:
        waiting = record.awaiting()
        blocks.append(section(_responses_lines(record)))
        if record.mode != "first_response":
            blocks.append(context(f"Waiting for {_mentions(waiting)}"))
    blocks.append(buttons(record))
    return message(f"Approval requested: {record.title}", *blocks)


def decided_message(record: ApprovalRecord) -> Message:
    """The same message once decided: outcome, who decided, the comment; no buttons."""
    blocks = _body(record)
    line = outcome_line(record)
    if record.comment:
        line += f"\n> {escape(clip(record.comment, 2000))}"
    blocks.append(section(line))
    if record.mode != "first_response" and record.responses:
        blocks.append(context(_responses_lines(record)))
    text = f"{record.title}: {outcome_word(record)}"
    if record.responder:
        text += f" by <@{record.responder}>"
    return message(text, *blocks)


def cancelled_text(record: ApprovalRecord) -> str:
    """`Cancelled: the flow was deleted by @alice`."""
    text = f"Cancelled: {escape(record.cancel_reason or 'the run was cancelled')}"
    return text + (f" by <@{record.cancelled_by}>" if record.cancelled_by else "")


def cancelled_message(record: ApprovalRecord) -> Message:
    """The request's message once its run was cancelled: says why; no buttons."""
    line = outcome_line(record)
    return message(f"{record.title}: {cancelled_text(record)}", *_body(record), section(line))


def comment_modal(
    record: ApprovalRecord, metadata: dict[str, Any], option: str | None = None
) -> dict[str, Any]:
    """Choose an option and add a comment; submitting records the response."""
    choices = [Option(text=PlainTextObject(text=clip(o, 75)), value=o) for o in record.options]
    initial = next((c for c in choices if c.value == option), None)
    picker: RadioButtonsElement | StaticSelectElement
    if len(choices) <= 10:  # Slack's limit for radio buttons
        picker = RadioButtonsElement(
            action_id=OPTION_ACTION, options=choices, initial_option=initial
        )
    else:
        picker = StaticSelectElement(
            action_id=OPTION_ACTION,
            placeholder=PlainTextObject(text="Choose"),
            options=choices,
            initial_option=initial,
        )
    view = View(
        type="modal",
        callback_id=COMMENT_CALLBACK,
        private_metadata=json.dumps(metadata),
        title=PlainTextObject(text="Approval"),
        submit=PlainTextObject(text="Send"),
        close=PlainTextObject(text="Cancel"),
        blocks=[
            SectionBlock(text=MarkdownTextObject(text=clip(f"*{_title(record)}*"))),
            InputBlock(
                block_id=OPTION_BLOCK,
                label=PlainTextObject(text="Your answer"),
                element=picker,
            ),
            InputBlock(
                block_id=COMMENT_BLOCK,
                label=PlainTextObject(text="Comment"),
                optional=True,
                element=PlainTextInputElement(
                    action_id=COMMENT_ACTION, multiline=True, max_length=2000
                ),
            ),
        ],
    )
    return view.to_dict()


# ------------------------------------------------------------------ ephemeral answers


def not_approver() -> Message:
    text = ":no_entry: You are not an approver of this request."
    return message("You are not an approver of this request.", section(text))


def already_decided(record: ApprovalRecord) -> Message:
    text = f"This request was already decided: {outcome_line(record)}."
    return message(text, section(text))


def cancelled(record: ApprovalRecord) -> Message:
    text = f"This request was cancelled: {escape(record.cancel_reason or 'its run was cancelled')}."
    return message(text, section(f":no_entry_sign: {text}"))


def already_responded(record: ApprovalRecord, user: str) -> Message:
    response = record.response_of(user)
    answer = escape(response.response) if response else "an answer"
    text = f"You already responded *{answer}* to this request; it is still waiting for others."
    return message(text, section(text))


def recorded(record: ApprovalRecord, user: str) -> Message:
    response = record.response_of(user)
    answer = escape(response.response) if response else "your answer"
    waiting = _mentions(record.awaiting())
    text = f"Your response *{answer}* was recorded. Still waiting for {waiting}."
    return message(text, section(text))


def unknown_option() -> Message:
    text = "That answer is not one of this request's options."
    return message(text, section(text))


def not_found() -> Message:
    text = "This approval request no longer exists."
    return message(text, section(text))


def answer(result: RespondResult, user: str, from_ephemeral: bool = False) -> Message | None:
    """The ephemeral answer to a click or a comment (None: the updated message says it).

    Decided from a `/flow approvals` list (`from_ephemeral`): the list itself is not
    updated, so the answer says how it was decided."""
    record = result.record
    if result.kind == "not_approver":
        return not_approver()
    if result.kind == "not_found" or record is None:
        return not_found()
    if result.kind == "unknown_option":
        return unknown_option()
    if result.kind == "recorded":
        return recorded(record, user)
    return _closed_answer(result, record, user, from_ephemeral)


def _closed_answer(
    result: RespondResult, record: ApprovalRecord, user: str, from_ephemeral: bool
) -> Message | None:
    if result.kind == "already_decided":
        return already_decided(record)
    if result.kind == "cancelled":
        return cancelled(record)
    if result.kind == "already_responded":
        return already_responded(record, user)
    return decided_notice(record) if from_ephemeral else None


# ------------------------------------------------------------------ refusals


def describe_approvals_error(error: FlowbotError) -> str | None:
    """Words for `flows.approval_model.ApprovalError` (a step that cannot be requested)."""
    if not isinstance(error, ApprovalError):
        return None
    if isinstance(error, UnknownChannelName):
        return (
            f"No channel `{escape(error.entry)}` that Flowbot can see: check the name, or "
            "invite Flowbot to the private channel."
        )
    if isinstance(error, UnknownApprover):
        return (
            f"`{escape(error.entry)}` is not a person, user group or channel: name approvers "
            "as mentions (`@person`, `@group`, `#channel`) or Slack ids."
        )
    if isinstance(error, NoApprovers):
        return "This approval has no approvers: its user groups and channels are empty."
    if isinstance(error, ImpossibleQuorum):
        return (
            f"A quorum of {error.quorum} is impossible with "
            f"{error.approvers} approver{'s' if error.approvers != 1 else ''}."
        )
    if isinstance(error, TooFewOptions):
        return "An approval needs at least two different options."
    if isinstance(error, UnknownApproveOption):
        listed = ", ".join(f"`{escape(o)}`" for o in error.options)
        return f"The approve option `{escape(error.option)}` is not one of the options ({listed})."
    return escape(str(error))


# ------------------------------------------------------------------ notices


def requested_notice(record: ApprovalRecord) -> Message:
    text = (
        f":ballot_box_with_check: Approval requested: *{_title(record)}*"
        f"\n{_about(record)} · approvers: {_mentions(record.approvers)}"
    )
    return message(f"Approval requested: {record.title}", section(text))


def decided_notice(record: ApprovalRecord) -> Message:
    text = f"Approval *{_title(record)}*"
    if record.flow_name:
        text += f" (flow *{escape(record.flow_name)}*)"
    text += f": {outcome_line(record)}"
    if record.comment:
        text += f"\n> {escape(clip(record.comment, 500))}"
    return message(f"Approval {record.title}: {outcome_word(record)}", section(text))


def requester_notice(record: ApprovalRecord) -> Message:
    text = f"Your request *{_title(record)}*"
    if record.flow_name:
        text += f" (flow *{escape(record.flow_name)}*)"
    if record.outcome == EXPIRED:
        text = f":hourglass: {text} expired: nobody decided in time."
    else:
        text = f"{outcome_emoji(record)} {text}: {outcome_line(record)}."
    if record.comment:
        text += f"\n> {escape(clip(record.comment, 2000))}"
    plain = f"Your request {record.title}: {outcome_word(record)}"
    return message(plain, section(text))


def reminder_message(record: ApprovalRecord) -> Message:
    how = "Answer with the buttons of the request, or with `/flow approvals`."
    return reminder(_title(record), record.title, record.timeout_at, how)


# ------------------------------------------------------------------ lists


def pending_item(record: ApprovalRecord) -> list[dict[str, Any]]:
    """One pending approval with its buttons (for lists)."""
    lines = f"*{_title(record)}*"
    if record.details:
        lines += f"\n{clip(record.details, 500)}"
    about = _about(record)
    if record.timeout_at:
        about += f" · expires {slack_date(record.timeout_at)}"
    return [section(lines), context(about), buttons(record)]


def pending_approvals_blocks(
    records: Sequence[ApprovalRecord], total: int | None = None
) -> list[dict[str, Any]]:
    """The App Home's "Pending approvals" section (header, items); empty list when none.
    `total`: how many are pending in all when `records` are the first `LIST_LIMIT`."""
    return pending_section("Pending approvals", records, pending_item, LIST_LIMIT, total)


def pending_list(records: Sequence[ApprovalRecord]) -> Message:
    """`/flow approvals`: my pending approvals with their buttons."""
    if not records:
        text = "No approvals are waiting for you."
        return message(text, section(f":tada: {text}"))
    count = len(records)
    text = f"{count} approval{'s' if count != 1 else ''} waiting for you"
    blocks = [
        ContextBlock(elements=[MarkdownTextObject(text=f"*{text}*")]).to_dict(),
        *pending_approvals_blocks(records)[1:],
    ]
    return message(text, *blocks)
