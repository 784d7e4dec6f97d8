"""Slack deliveries already taken in, remembered across restarts.

A request Slack signed stays valid for five minutes; a replay of it (or Slack's retry of
a click or submission) must not do its work twice, even when the bot restarted in
between. The log keeps each delivery's key (the trigger id, else the signature) for
`KEEP`, longer than a signature is accepted; the database drops it afterwards (a TTL
index).
"""

from __future__ import annotations

from datetime import datetime, timedelta
from typing import Protocol

# Signatures are accepted five minutes either way; kept twice that, and a margin.
KEEP = timedelta(minutes=15)


class DeliveryLog(Protocol):
    async def first_time(self, key: str, at: datetime) -> bool:
        """Record `key` as taken in at `at`; False when it was recorded before."""
        ...

    async def forget(self, key: str) -> None:
        """Drop `key`: its delivery was refused and changed nothing, so nothing is kept."""
        ...
