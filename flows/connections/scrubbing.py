"""Finding a connection's secrets in what an API answers, however it is encoded.

An API may echo a credential verbatim, but also base64-encoded (an echoed
``Authorization: Basic …`` header), URL-safe base64 (a token in a JWT-like value), hex,
percent-encoded (a query string), or upper- or lower-cased. `secret_forms` lists the
forms of one secret to look for; `Scrubber` replaces any of them, in any letter case, in
strings nested in lists and dicts.

Base64 of a secret inside a longer encoded text depends on where the secret starts (its
offset modulo 3), so the three alignments are listed, each without the characters its
neighbours share.
"""

from __future__ import annotations

import base64
import functools
import re
from collections.abc import Iterable, Sequence
from typing import Any
from urllib.parse import quote, quote_plus

import re2

__all__ = ["Scrubber", "secret_forms"]


def _base64_cores(raw: bytes) -> set[str]:
    """The base64 characters that depend only on `raw`, for each alignment of it."""
    cores: set[str] = set()
    for shift in range(3):
        encoded = base64.b64encode(b"\0" * shift + raw).decode("ascii").rstrip("=")
        start = -(-8 * shift // 6)  # first character made of `raw`'s bits only
        end = 8 * (shift + len(raw)) // 6  # one past the last such character
        cores.add(encoded[start:end])
        if shift == 0:
            cores.add(base64.b64encode(raw).decode("ascii"))  # with its padding
    return cores


def secret_forms(secret: str, min_length: int) -> set[str]:
    """`secret` and its common encodings, each at least `min_length` characters."""
    raw = secret.encode("utf-8")
    forms = {secret, raw.hex(), quote(secret, safe=""), quote_plus(secret)}
    for core in _base64_cores(raw):
        forms.add(core)
        forms.add(core.replace("+", "-").replace("/", "_"))
    return {form for form in forms if len(form) >= min_length}


# Below this length Python's re is quicker (no UTF-8 round trip); above, RE2 (a DFA) scans
# for all the forms at once, a megabyte in milliseconds where re takes a tenth of a second.
_LONG_TEXT = 4096


@functools.lru_cache(maxsize=256)
def _patterns(forms: tuple[str, ...]) -> tuple[re.Pattern[str], Any]:
    # Longest first, so a secret's longer encoding is replaced whole.
    ordered = sorted(set(forms), key=len, reverse=True)
    alternation = "|".join(re.escape(form) for form in ordered)
    options = re2.Options()
    options.log_errors = False
    options.case_sensitive = False
    return re.compile(alternation, re.IGNORECASE), re2.compile(alternation, options)


class Scrubber:
    """Replaces every form of the given secrets (see `secret_forms`) with `redacted`."""

    def __init__(self, secrets: Iterable[str], redacted: str, min_length: int) -> None:
        forms: set[str] = set()
        for secret in secrets:
            if len(secret) >= min_length:
                forms |= secret_forms(secret, min_length)
        self.forms: tuple[str, ...] = tuple(sorted(forms, key=len, reverse=True))
        self.redacted = redacted
        self._patterns = _patterns(self.forms) if self.forms else None

    def _replace(self, _match: Any) -> str:
        return self.redacted

    def text(self, value: str) -> str:
        if self._patterns is None:
            return value
        short, long = self._patterns
        if len(value) < _LONG_TEXT:
            return short.sub(self.redacted, value)
        return str(long.sub(self._replace, value))

    def __call__(self, value: Any) -> Any:
        if isinstance(value, str):
            return self.text(value)
        if isinstance(value, list):
            return [self(item) for item in value]
        if isinstance(value, dict):
            return {self.text(str(k)): self(v) for k, v in value.items()}
        return value


def scrub_forms(value: Any, secrets: Sequence[str], redacted: str, min_length: int) -> Any:
    """`Scrubber(secrets, …)(value)` in one call."""
    return Scrubber(secrets, redacted, min_length)(value)
