"""Human durations: ``30s``, ``5m``, ``2h``, ``2d``, ``1w``, ``1h30m`` or plain seconds."""

from __future__ import annotations

import re
from datetime import timedelta

__all__ = ["format_duration", "parse_duration"]

_UNITS: dict[str, int] = {"w": 604_800, "d": 86_400, "h": 3_600, "m": 60, "s": 1}
_PART = re.compile(r"(\d+)\s*([wdhms])")
_FULL = re.compile(r"(?:\d+\s*[wdhms]\s*)+")
# Far beyond any sensible timeout, small enough for timedelta and datetime arithmetic.
_MAX_SECONDS = 3_650 * 86_400

_HELP = "expected a duration like 30s, 5m, 2h, 2d, 1w or 1h30m"


def parse_duration(text: str) -> timedelta:
    """Parse ``"1h30m"``-style durations; a plain integer is a number of seconds.

    Raises ``ValueError`` with a short, human message for anything else.
    """
    if isinstance(text, bool) or not isinstance(text, (str, int)):
        raise ValueError(_HELP)
    raw = str(text).strip().lower()
    if not raw:
        raise ValueError(f"empty duration ({_HELP})")
    if raw.isdigit():
        seconds = int(raw)
    else:
        if not _FULL.fullmatch(raw):
            raise ValueError(f"invalid duration {str(text).strip()!r} ({_HELP})")
        seconds = 0
        seen: set[str] = set()
        for number, unit in _PART.findall(raw):
            if unit in seen:
                raise ValueError(f"invalid duration {raw!r}: unit {unit!r} appears twice")
            seen.add(unit)
            seconds += int(number) * _UNITS[unit]
    if seconds > _MAX_SECONDS:
        raise ValueError(f"duration {raw!r} is too long (at most 3650d)")
    return timedelta(seconds=seconds)


def format_duration(td: timedelta) -> str:
    """Compact inverse of :func:`parse_duration`: ``timedelta(hours=1, minutes=30)`` → ``1h30m``.

    Sub-second parts are dropped; zero (or negative) gives ``0s``.
    """
    total = int(td.total_seconds())
    if total <= 0:
        return "0s"
    parts: list[str] = []
    for unit, size in _UNITS.items():
        count, total = divmod(total, size)
        if count:
            parts.append(f"{count}{unit}")
    return "".join(parts)
