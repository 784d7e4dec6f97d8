"""Small shared Block Kit pieces. Cards return `{"text": …, "blocks": […]}` dicts."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from slack_sdk.models.blocks import (
    ActionsBlock,
    ButtonElement,
    ConfirmObject,
    ContextBlock,
    HeaderBlock,
    InteractiveElement,
    MarkdownTextObject,
    PlainTextObject,
    SectionBlock,
)
from slack_sdk.models.views import View

Message = dict[str, Any]

# Slack's limits that cards keep to (slack_sdk validates them too).
SECTION_TEXT_LIMIT = 3000
MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100
LABEL_LIMIT = 75  # a button's or an option's text
HEADER_LIMIT = 150
MODAL_TITLE_LIMIT = 24


def clip(text: str, limit: int = SECTION_TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Escape user text for mrkdwn: Slack's three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def plain(text: str, limit: int = LABEL_LIMIT) -> PlainTextObject:
    """Plain text (emoji shown), clipped to `limit`."""
    return PlainTextObject(text=clip(text, limit), emoji=True)


def slack_date(at: datetime) -> str:
    """A date Slack shows in each reader's timezone ("Yesterday at 9:00 AM"), UTC otherwise."""
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def section(text: str) -> dict[str, Any]:
    return SectionBlock(text=MarkdownTextObject(text=clip(text))).to_dict()


def context(text: str) -> dict[str, Any]:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text))]).to_dict()


def header(text: str, block_id: str | None = None) -> dict[str, Any]:
    return HeaderBlock(block_id=block_id, text=plain(text, HEADER_LIMIT)).to_dict()


def button(
    text: str,
    action_id: str,
    value: str | None = None,
    style: str | None = None,
    confirm: ConfirmObject | None = None,
) -> ButtonElement:
    return ButtonElement(
        text=plain(text), action_id=action_id, value=value, style=style, confirm=confirm
    )


def actions(*elements: InteractiveElement, block_id: str | None = None) -> dict[str, Any]:
    return ActionsBlock(elements=list(elements), block_id=block_id).to_dict()


def modal(
    title: str,
    blocks: list[Any],
    callback_id: str,
    *,
    submit: str | None = None,
    close: str = "Cancel",
    metadata: str | None = None,
) -> dict[str, Any]:
    view = View(
        type="modal",
        callback_id=callback_id,
        title=plain(title, MODAL_TITLE_LIMIT),
        submit=plain(submit, MODAL_TITLE_LIMIT) if submit else None,
        close=plain(close, MODAL_TITLE_LIMIT),
        private_metadata=metadata or None,
        blocks=blocks,
    )
    return view.to_dict()


def message(text: str, *blocks: dict[str, Any]) -> Message:
    return {"text": clip(text, 40000), "blocks": list(blocks)}


def error_message(error: str, usage: str | None) -> Message:
    lines = f":warning: {error}"
    if usage:
        lines += f"\nUsage: `{usage}`"
    return message(f"{error}" + (f" Usage: {usage}" if usage else ""), section(lines))


def info_message(text: str) -> Message:
    return message(text, section(text))
