"""Small shared Block Kit pieces. Cards return `{"text": …, "blocks": […]}` dicts."""

from __future__ import annotations

from typing import Any

from slack_sdk.models.blocks import ContextBlock, MarkdownTextObject, SectionBlock

Message = dict[str, Any]

# Slack's limits that cards keep to (slack_sdk validates them too).
SECTION_TEXT_LIMIT = 3000
MESSAGE_BLOCK_LIMIT = 50
VIEW_BLOCK_LIMIT = 100


def clip(text: str, limit: int = SECTION_TEXT_LIMIT) -> str:
    return text if len(text) <= limit else text[: limit - 1] + "…"


def escape(text: str) -> str:
    """Escape user text for mrkdwn: Slack's three control characters."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def section(text: str) -> dict[str, Any]:
    return SectionBlock(text=MarkdownTextObject(text=clip(text))).to_dict()


def context(text: str) -> dict[str, Any]:
    return ContextBlock(elements=[MarkdownTextObject(text=clip(text))]).to_dict()


def message(text: str, *blocks: dict[str, Any]) -> Message:
    return {"text": clip(text, 40000), "blocks": list(blocks)}


def error_message(error: str, usage: str | None) -> Message:
    lines = f":warning: {error}"
    if usage:
        lines += f"\nUsage: `{usage}`"
    return message(f"{error}" + (f" Usage: {usage}" if usage else ""), section(lines))


def info_message(text: str) -> Message:
    return message(text, section(text))
