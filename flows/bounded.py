"""Limits on what people and callers hand the bot, so that every value can be stored and
shown: whole numbers fit in 64 bits (MongoDB's largest integer), numbers are at most
`MAX_NUMBER_CHARS` characters, JSON is at most `MAX_DEPTH` levels deep, and keys are
short text without NUL (MongoDB refuses NUL in a key).

`loads` reads JSON under these limits and raises `TooComplex` with a short reason, before
Python's own limits (recursion, 4,300-digit integers) can answer with their text.
"""

from __future__ import annotations

import json
import math
from typing import Any

INT64_MIN = -(2**63)
INT64_MAX = 2**63 - 1
MAX_NUMBER_CHARS = 40
MAX_DEPTH = 32
MAX_KEY_CHARS = 256


class TooComplex(ValueError):
    """A value beyond the limits; the message is short and fit to show."""


def whole_number(text: str) -> int:
    """`text` (digits with an optional sign) as an int within 64 bits, or `TooComplex`."""
    digits = text.lstrip("+-")
    if len(digits.lstrip("0")) > 19:
        raise TooComplex(TOO_LARGE)
    value = int(text)
    if not INT64_MIN <= value <= INT64_MAX:
        raise TooComplex(TOO_LARGE)
    return value


TOO_LARGE = f"numbers must be between {INT64_MIN:,} and {INT64_MAX:,}"


def _parse_float(text: str) -> float:
    if len(text) > MAX_NUMBER_CHARS:
        raise TooComplex(f"numbers are limited to {MAX_NUMBER_CHARS} characters")
    value = float(text)
    if not math.isfinite(value):
        raise TooComplex(_TOO_LARGE_FLOAT)
    return value


_TOO_LARGE_FLOAT = "numbers must be finite (this one is too large)"


def _parse_constant(name: str) -> Any:
    raise TooComplex(f"{name} is not a JSON number")


def loads(text: str | bytes) -> Any:
    """JSON within the limits; `TooComplex` (a ValueError) says which one is passed, and
    other ValueErrors (UnicodeDecodeError included) mean it is not JSON."""
    try:
        value = json.loads(
            text,
            parse_int=whole_number,
            parse_float=_parse_float,
            parse_constant=_parse_constant,
        )
    except RecursionError:
        raise TooComplex(f"JSON may be at most {MAX_DEPTH} levels deep") from None
    check(value)
    return value


def check(value: Any) -> None:
    """`TooComplex` when `value` (parsed JSON) is too deep or has a key it may not have.
    Iterative, so any depth is checked without recursion."""
    stack: list[tuple[Any, int]] = [(value, 1)]
    while stack:
        current, depth = stack.pop()
        if isinstance(current, dict):
            children: Any = current.values()
            for key in current:
                _check_key(key)
        elif isinstance(current, list):
            children = current
        else:
            if isinstance(current, int) and not INT64_MIN <= current <= INT64_MAX:
                raise TooComplex(TOO_LARGE)
            continue
        if depth > MAX_DEPTH:
            raise TooComplex(f"JSON may be at most {MAX_DEPTH} levels deep")
        stack.extend((child, depth + 1) for child in children)


def _check_key(key: Any) -> None:
    if not isinstance(key, str):
        return
    if "\x00" in key:
        raise TooComplex("keys may not contain the NUL character")
    if len(key) > MAX_KEY_CHARS:
        raise TooComplex(f"keys are limited to {MAX_KEY_CHARS} characters")
