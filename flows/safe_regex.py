"""User regular expressions on a linear-time engine (RE2).

People type the patterns of message triggers; Python's backtracking ``re`` can take
exponential time on some of them (``(a+)+$`` against ``aaaa…!``), which would freeze the
bot for everyone. RE2 matches in time linear in the text, and refuses what needs
backtracking (backreferences, lookahead and lookbehind): those get a clear save error.
"""

from __future__ import annotations

import functools
from typing import Any

import re2

__all__ = ["UserRegexError", "compile_user_regex", "search"]

_MAX_PATTERN = 1_000


class UserRegexError(ValueError):
    """The pattern is not one RE2 accepts; the message says why, in people's words."""


def _options() -> Any:
    options = re2.Options()
    options.log_errors = False
    options.max_mem = 8 << 20  # bounds the compiled program (huge repetitions)
    return options


_UNSUPPORTED = (
    ("(?=", "lookahead (?=…) is not supported"),
    ("(?!", "negative lookahead (?!…) is not supported"),
    ("(?<=", "lookbehind (?<=…) is not supported"),
    ("(?<!", "negative lookbehind (?<!…) is not supported"),
    ("(?>", "atomic groups (?>…) are not supported"),
    ("(?P=", "backreferences (?P=name) are not supported"),
)


def _explain(pattern: str, detail: str) -> str:
    for marker, words in _UNSUPPORTED:
        if marker in pattern:
            return words
    if "invalid escape sequence: \\" in detail and any(
        ch.isdigit() for ch in detail.rsplit("\\", 1)[-1][:1]
    ):
        return "backreferences (\\1) are not supported"
    return detail


@functools.lru_cache(maxsize=512)
def compile_user_regex(pattern: str) -> Any:
    """The compiled pattern, or UserRegexError with a short reason."""
    if len(pattern) > _MAX_PATTERN:
        raise UserRegexError(f"pattern too long (at most {_MAX_PATTERN} characters)")
    try:
        return re2.compile(pattern, _options())
    except re2.error as exc:
        detail = exc.args[0] if exc.args else str(exc)
        if isinstance(detail, bytes):
            detail = detail.decode("utf-8", "replace")
        raise UserRegexError(_explain(pattern, str(detail))) from None


def search(pattern: str, text: str) -> Any:
    """RE2's search of ``pattern`` in ``text`` (a match object or None); UserRegexError
    if the pattern is not valid."""
    return compile_user_regex(pattern).search(text)
