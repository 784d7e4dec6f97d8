"""What storage gives back: plain data, and MongoDB's meaning of a limit."""

from __future__ import annotations

from collections.abc import Mapping
from datetime import date, datetime
from typing import Any


def plain(value: Any) -> Any:
    """A copy of `value` as it comes back from storage: mappings with text keys, lists,
    and dates (without a time) as ISO text."""
    if isinstance(value, Mapping):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [plain(v) for v in value]
    if isinstance(value, date) and not isinstance(value, datetime):
        return value.isoformat()
    return value


def limited(items: list[Any], limit: int) -> list[Any]:
    # As in MongoDB, a limit of 0 means "no limit".
    return items[:limit] if limit else items
