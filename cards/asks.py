"""`ask` step cards: the request with its **Fill in** button, the form modal (the same
widgets as the "Run flow" modal), the message once answered, expired or cancelled, the
ephemeral answers, and the pending forms listed with pending approvals.

The button: `action_id` `ask_fill`, `value` the ask id. The modal: callback `ask_submit`,
one input block per field (block_id `ask_field:<field id>`), the ask id in its metadata.
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    HeaderBlock,
    InputBlock,
    PlainTextObject,
)
from slack_sdk.models.views import View

from cards.common import Message, clip, context, escape, message, section
from cards.people_requests import pending_section, reminder, slack_date
from cards.runs import input_element
from flows.ask_model import AskRecord, AskResult

FILL_BUTTON = "ask_fill"
SUBMIT_CALLBACK = "ask_submit"
FIELD_PREFIX = "ask_field:"
LIST_LIMIT = 10


def field_block_id(field_id: str) -> str:
    return FIELD_PREFIX + field_id


def _about(record: AskRecord) -> str:
    parts = []
    if record.flow_name:
        parts.append(f"Flow *{escape(record.flow_name)}*")
    if record.requester:
        parts.append(f"asked by <@{record.requester}>")
    if record.timeout_at:
        parts.append(f"expires {slack_date(record.timeout_at)}")
    return " · ".join(parts) or "A form to fill in"


def _body(record: AskRecord) -> list[dict[str, Any]]:
    blocks = [HeaderBlock(text=PlainTextObject(text=clip(record.title or "Form", 150))).to_dict()]
    if record.details:
        blocks.append(section(record.details))
    blocks.append(context(_about(record)))
    return blocks


def fill_button(record: AskRecord) -> dict[str, Any]:
    return ActionsBlock(
        block_id=f"ask:{record.id}",
        elements=[
            ButtonElement(
                text=PlainTextObject(text="Fill in"),
                action_id=FILL_BUTTON,
                value=record.id,
                style="primary",
            )
        ],
    ).to_dict()


def request_message(record: AskRecord) -> Message:
    """The message with the Fill in button (a DM to one person, or a channel post)."""
    return message(f"Please fill in: {record.title}", *_body(record), fill_button(record))


def _answer_lines(record: AskRecord) -> str:
    lines = []
    for spec in record.fields:
        value = record.answers.get(spec.id)
        shown = "—" if value is None or value == "" else _shown(spec.type, value)
        lines.append(f"*{escape(spec.label or spec.id)}*: {shown}")
    return "\n".join(lines)


def _shown(kind: str, value: Any) -> str:
    if kind == "user":
        return f"<@{value}>"
    if kind == "channel" and str(value)[:1] in ("C", "G"):
        return f"<#{value}>"
    if kind == "boolean":
        return "Yes" if value else "No"
    return escape(clip(str(value), 500))


def status_line(record: AskRecord) -> str:
    if record.status == "answered":
        return f":white_check_mark: *Answered* by <@{record.responder}>"
    if record.status == "expired":
        return ":hourglass: *Expired*: nobody answered in time"
    if record.status == "cancelled":
        reason = escape(record.cancel_reason or "the run was cancelled")
        by = f" by <@{record.cancelled_by}>" if record.cancelled_by else ""
        return f":no_entry_sign: Cancelled: {reason}{by}"
    return "Waiting for an answer"


def closed_message(record: AskRecord) -> Message:
    """The request once answered (who answered, the answers), expired or cancelled."""
    blocks = [*_body(record), section(status_line(record))]
    if record.status == "answered":
        blocks.append(section(clip(_answer_lines(record), 3000)))
    text = f"{record.title}: {record.status}"
    if record.responder:
        text += f" by <@{record.responder}>"
    return message(text, *blocks)


def _named(record: AskRecord) -> str:
    text = f"*{escape(record.title)}*"
    if record.flow_name:
        text += f" (flow *{escape(record.flow_name)}*)"
    return text


def _asked(record: AskRecord) -> str:
    shown = [f"<#{c}>" for c in record.channels] + [f"<@{u}>" for u in record.direct]
    return ", ".join(shown[:20]) + (" …" if len(shown) > 20 else "")


def requested_notice(record: AskRecord) -> Message:
    """The notify channel hears a form was posted (SPEC §8, as for approvals)."""
    text = f":memo: Form requested: {_named(record)}\n{_about(record)} · asked: {_asked(record)}"
    return message(f"Form requested: {record.title}", section(text))


def closed_notice(record: AskRecord) -> Message:
    """The notify channel hears who answered the form, or that it expired."""
    text = f"Form {_named(record)}: {status_line(record)}"
    plain = f"Form {record.title}: {record.status}"
    if record.responder:
        plain += f" by <@{record.responder}>"
    return message(plain, section(text))


def requester_notice(record: AskRecord) -> Message:
    """The person who started the run: their form expired unanswered."""
    text = (
        f":hourglass: Your form {_named(record)} expired: nobody answered in time "
        f"(asked: {_asked(record)}). The run goes on without the answers."
    )
    return message(f"Your form {record.title}: expired", section(text))


def reminder_message(record: AskRecord) -> Message:
    how = "Use the form's *Fill in* button, or `/flow approvals`."
    return reminder(record.title, record.title, record.timeout_at, how)


def form_modal(record: AskRecord, metadata: dict[str, Any]) -> dict[str, Any]:
    """The form: one typed input per field, as in the "Run flow" modal."""
    blocks: list[dict[str, Any]] = []
    if record.details:
        blocks.append(section(record.details))
    for spec in record.fields[:90]:
        blocks.append(
            InputBlock(
                block_id=field_block_id(spec.id),
                label=clip(spec.label or spec.id, 2000),
                element=input_element(spec, spec.default),
                optional=not spec.required,
                hint=clip(spec.description, 2000) if spec.description else None,
            ).to_dict()
        )
    view = View(
        type="modal",
        callback_id=SUBMIT_CALLBACK,
        private_metadata=json.dumps(metadata),
        title=clip(record.title or "Form", 24),
        submit="Send",
        close="Cancel",
        blocks=blocks,
    )
    return view.to_dict()


# ------------------------------------------------------------------ answers


def refusal_text(result: AskResult) -> str:
    """Why this person cannot fill in the form (now)."""
    record = result.record
    if result.kind == "not_asked":
        return ":no_entry: You were not asked to fill in this form."
    if record is None or result.kind == "not_found":
        return "This form no longer exists."
    if result.kind == "already_answered":
        return f"This form was already answered by <@{record.responder}>."
    if result.kind == "expired":
        return ":hourglass: This form expired: nobody answered in time."
    if result.kind == "cancelled":
        return (
            f"This form was cancelled: {escape(record.cancel_reason or 'its run was cancelled')}."
        )
    return "Thanks, your answer was recorded."


def refusal(result: AskResult) -> Message:
    text = refusal_text(result)
    return message(text, section(text))


def notice_view(result: AskResult) -> dict[str, Any]:
    """The modal, replaced when the submission cannot count (someone else was first)."""
    return View(
        type="modal", title="Form", close="OK", blocks=[section(refusal_text(result))]
    ).to_dict()


def field_errors(errors: dict[str, str]) -> dict[str, str]:
    return {field_block_id(field_id): text for field_id, text in errors.items()}


# ------------------------------------------------------------------ lists


def pending_item(record: AskRecord) -> list[dict[str, Any]]:
    lines = f":memo: *{record.title}*"
    if record.details:
        lines += f"\n{clip(record.details, 500)}"
    return [section(lines), context(_about(record)), fill_button(record)]


def pending_asks_blocks(
    records: Sequence[AskRecord], total: int | None = None
) -> list[dict[str, Any]]:
    """The App Home's "Forms to fill in" section (header, items); empty when none.
    `total`: how many are open in all when `records` are the first `LIST_LIMIT`."""
    return pending_section("Forms to fill in", records, pending_item, LIST_LIMIT, total)


def with_pending_asks(approvals: Message, records: Sequence[AskRecord]) -> Message:
    """`/flow approvals` with the forms waiting for this person after the approvals."""
    if not records:
        return approvals
    count = len(records)
    text = f"{count} form{'s' if count != 1 else ''} to fill in"
    return message(
        f"{approvals['text']} · {text}", *approvals["blocks"], *pending_asks_blocks(records)
    )


def no_approvals() -> Message:
    """`/flow approvals` when only forms are waiting."""
    return message("No approvals are waiting for you")
