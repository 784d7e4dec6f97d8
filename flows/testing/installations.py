"""In-memory twin of `flows.workspace_context.InstallationRecords` (contract-tested with
the MongoDB one, `storage.installations_repo`)."""

from __future__ import annotations

from datetime import datetime

LATEST = "*"


class MemoryInstallationRecords:
    def __init__(self) -> None:
        self.bots: dict[str, str] = {}
        self.installations: dict[tuple[str, str], str] = {}
        self.states: dict[str, datetime] = {}

    async def save_bot(self, key: str, sealed: str) -> None:
        self.bots[key] = sealed

    async def find_bot(self, key: str) -> str | None:
        return self.bots.get(key)

    async def delete_bot(self, key: str) -> None:
        self.bots.pop(key, None)

    async def save_installation(self, key: str, user: str | None, sealed: str) -> None:
        self.installations[(key, user or LATEST)] = sealed

    async def find_installation(self, key: str, user: str | None) -> str | None:
        return self.installations.get((key, user or LATEST))

    async def delete_installations(self, key: str, user: str | None) -> None:
        for slot in [s for s in self.installations if s[0] == key]:
            if user is None or slot[1] == user:
                del self.installations[slot]

    async def issue_state(self, state: str, expires_at: datetime) -> None:
        if state in self.states:
            raise ValueError("state already issued")
        self.states[state] = expires_at

    async def consume_state(self, state: str, now: datetime) -> bool:
        expires_at = self.states.pop(state, None)
        return expires_at is not None and expires_at > now
