"""`private_metadata` comes back from Slack inside payloads anyone with the signing
secret's help could not forge — but a view's metadata is whatever the payload says, so it
is untrusted input. The bot seals what it puts there (an HMAC with a key derived from the
signing secret) and opens it on the way back: metadata the bot did not write is refused,
and a response URL kept there cannot be replaced by another address.
"""

from __future__ import annotations

import hashlib
import hmac

_MAC_CHARS = 32  # 128 bits of HMAC-SHA256, hex
_SEP = "|"


def derive_key(secret: str) -> bytes:
    """The sealing key, derived from a secret the bot already has (never the secret itself)."""
    return hmac.new(secret.encode(), b"flowbot/private_metadata/v1", hashlib.sha256).digest()


class MetadataSeal:
    def __init__(self, key: bytes) -> None:
        self._key = key

    def _mac(self, text: str) -> str:
        return hmac.new(self._key, text.encode(), hashlib.sha256).hexdigest()[:_MAC_CHARS]

    def seal(self, text: str) -> str:
        """`text` with its MAC in front ("" stays "": nothing to trust)."""
        return f"{self._mac(text)}{_SEP}{text}" if text else ""

    def open(self, sealed: str) -> str | None:
        """What `seal` was given, or None when `sealed` was not written by `seal`."""
        if not sealed:
            return ""
        mac, sep, text = sealed.partition(_SEP)
        if not sep or len(mac) != _MAC_CHARS:
            return None
        return text if hmac.compare_digest(mac, self._mac(text)) else None
