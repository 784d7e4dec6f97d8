"""What the approvals' and the asks' cards share (`cards.approvals`, `cards.asks`): a
date as Slack shows it, the reminder DM, a person's pending list in the App Home (a
header, the items divided, at most a limit and a pointer to `/flow approvals`)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from datetime import datetime
from typing import Any, TypeVar

from slack_sdk.models.blocks import DividerBlock, HeaderBlock, PlainTextObject

from cards.common import Message, context, message, section

T = TypeVar("T")


def slack_date(at: datetime) -> str:
    """`at` in each reader's time zone (UTC where Slack cannot)."""
    fallback = at.strftime("%Y-%m-%d %H:%M UTC")
    return f"<!date^{int(at.timestamp())}^{{date_short_pretty}} at {{time}}|{fallback}>"


def reminder(title: str, plain_title: str, expires: datetime | None, how: str) -> Message:
    """The reminder DM: `title` (mrkdwn) waits for an answer, until `expires`; `how` to answer."""
    text = f":bell: Reminder: *{title}* is waiting for your answer"
    if expires:
        text += f"; it expires {slack_date(expires)}"
    text += f".\n{how}"
    return message(f"Reminder: {plain_title} is waiting for your answer", section(text))


def pending_section(
    header: str,
    records: Sequence[T],
    item: Callable[[T], list[dict[str, Any]]],
    limit: int,
    total: int | None = None,
) -> list[dict[str, Any]]:
    """`header` over the first `limit` items (`item` renders one); empty when none.
    `total`: how many there are in all when `records` are only the first ones."""
    count = len(records) if total is None else max(total, len(records))
    if not records:
        return []
    blocks: list[dict[str, Any]] = [HeaderBlock(text=PlainTextObject(text=header)).to_dict()]
    for index, record in enumerate(records[:limit]):
        if index:
            blocks.append(DividerBlock().to_dict())
        blocks.extend(item(record))
    if count > limit:
        blocks.append(context(f"…and {count - limit} more: `/flow approvals`"))
    return blocks
