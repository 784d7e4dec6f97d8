"""Re-encrypting connections made with an older key (SPEC §6: replacing a key)."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from flows.connections.model import ConnectionStore
from flows.secrets import SecretBox, SecretUnavailable

if TYPE_CHECKING:
    from flows.connections.core import ConnectionCore

log = logging.getLogger(__name__)


async def reencrypt_stale(store: ConnectionStore, box: SecretBox) -> int:
    """Re-encrypt, with the newest key, every connection made with an older key."""
    count = 0
    for record in await store.stale_keys(box.current_key_id):
        try:
            ciphertext = box.rotate(record.ciphertext)
        except SecretUnavailable:
            log.error(
                "connection %s cannot be decrypted with the configured keys; "
                "it stays as it is until its owner updates its credentials",
                record.id,
            )
            continue
        if await store.set_ciphertext(record.id, record.key_id, ciphertext, box.current_key_id):
            count += 1
    if count:
        log.info("re-encrypted %d connection(s) with the newest key", count)
    return count


class KeyRotation:
    """A bot.app Service: at start, re-encrypt connections made with an older key."""

    def __init__(self, service: ConnectionCore) -> None:
        self.service = service

    async def start(self) -> None:
        await reencrypt_stale(self.service.store, self.service.box)

    async def stop(self) -> None:
        return None
