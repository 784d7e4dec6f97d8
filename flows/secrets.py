"""Connection secrets at rest: Fernet tokens under a MultiFernet key ring.

The ring lists keys newest first. New secrets are encrypted with the newest key; older keys
still decrypt, and `rotate` re-encrypts a token under the newest key, so replacing a key is:
put the new key in front (`FLOWBOT_SECRET_KEY=new,old`), start, drop the old key later.

Nothing here logs, and no exception text carries plaintext: a failed decryption raises
`SecretUnavailable`, whose message names no value.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Mapping, Sequence

from cryptography.fernet import Fernet, InvalidToken, MultiFernet

MASK = "••••"
# Secrets shorter than this show no characters at all in their masked hint.
MIN_LENGTH_TO_SHOW_TAIL = 12


class SecretKeyError(ValueError):
    """A configured key is not a Fernet key (32 url-safe base64-encoded bytes)."""


class SecretUnavailable(Exception):
    """A stored secret cannot be decrypted with the configured keys."""


def key_id(key: str | bytes) -> str:
    """A short, non-reversible fingerprint of a key: which key encrypted a document."""
    raw = key.encode() if isinstance(key, str) else key
    return hashlib.sha256(b"flowbot-secret-key:" + raw.strip()).hexdigest()[:16]


def generate_key() -> str:
    return Fernet.generate_key().decode("ascii")


def parse_keys(value: str) -> list[str]:
    """`new,old,…` → the keys, newest first; blanks ignored; each must be a Fernet key."""
    keys = [part.strip() for part in value.split(",") if part.strip()]
    if not keys:
        raise SecretKeyError("no key given")
    for position, key in enumerate(keys, start=1):
        try:
            Fernet(key.encode("ascii"))
        except (ValueError, UnicodeEncodeError):
            # The message names the position only: a mistyped key is still a secret.
            raise SecretKeyError(
                f"key #{position} is not a Fernet key (32 url-safe base64 bytes)"
            ) from None
    return keys


def mask(secret: str) -> str:
    """`••••abcd`: at most the last 4 characters, and none for short secrets."""
    if len(secret) >= MIN_LENGTH_TO_SHOW_TAIL:
        return MASK + secret[-4:]
    return MASK


class SecretBox:
    """Encrypts a small mapping of secret fields into one Fernet token."""

    def __init__(self, keys: Sequence[str]) -> None:
        if not keys:
            raise SecretKeyError("no key given")
        self._fernet = MultiFernet([Fernet(k.encode("ascii")) for k in keys])
        self._newest = Fernet(keys[0].encode("ascii"))
        self.current_key_id = key_id(keys[0])

    def encrypt(self, values: Mapping[str, str]) -> str:
        payload = json.dumps(dict(values), separators=(",", ":"), sort_keys=True)
        return self._fernet.encrypt(payload.encode("utf-8")).decode("ascii")

    def decrypt(self, token: str) -> dict[str, str]:
        try:
            payload = self._fernet.decrypt(token.encode("ascii"))
        except (InvalidToken, UnicodeEncodeError):
            raise SecretUnavailable(
                "the stored credentials cannot be decrypted with the configured "
                "FLOWBOT_SECRET_KEY (was the key replaced without keeping the old one?)"
            ) from None
        data = json.loads(payload)
        return {str(k): str(v) for k, v in data.items()}

    def is_current(self, token: str) -> bool:
        """Was the token encrypted with the newest key?"""
        try:
            self._newest.decrypt(token.encode("ascii"))
            return True
        except (InvalidToken, UnicodeEncodeError):
            return False

    def rotate(self, token: str) -> str:
        """The same secret, encrypted with the newest key."""
        try:
            return self._fernet.rotate(token.encode("ascii")).decode("ascii")
        except (InvalidToken, UnicodeEncodeError):
            raise SecretUnavailable(
                "the stored credentials cannot be decrypted with the configured keys"
            ) from None
