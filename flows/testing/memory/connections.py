"""`MemoryConnectionStore`: connections (ciphertext and hints only)."""

from __future__ import annotations

from collections.abc import Sequence

from flows.connections import ConnectionRecord, DuplicateConnectionName


def connection_name_key(name: str) -> str:
    return " ".join(name.split()).casefold()


class MemoryConnectionStore:
    """`flows.connections.ConnectionStore` in memory (MongoDB: `storage.connections_repo`)."""

    def __init__(self) -> None:
        self._records: dict[str, ConnectionRecord] = {}

    def _clash(self, record: ConnectionRecord) -> bool:
        key = connection_name_key(record.name)
        return any(
            r.id != record.id
            and r.team_id == record.team_id
            and r.owner == record.owner
            and connection_name_key(r.name) == key
            for r in self._records.values()
        )

    def _stored(self, team_id: str, connection_id: str) -> ConnectionRecord | None:
        record = self._records.get(connection_id)
        return record if record is not None and record.team_id == team_id else None

    async def insert(self, record: ConnectionRecord) -> None:
        if record.id in self._records or self._clash(record):
            raise DuplicateConnectionName(record.name)
        self._records[record.id] = record.model_copy(deep=True)

    async def get(self, team_id: str, connection_id: str) -> ConnectionRecord | None:
        record = self._stored(team_id, connection_id)
        return record.model_copy(deep=True) if record is not None else None

    async def get_many(self, team_id: str, ids: Sequence[str]) -> list[ConnectionRecord]:
        wanted = set(ids)
        return [
            r.model_copy(deep=True)
            for r in self._records.values()
            if r.id in wanted and r.team_id == team_id
        ]

    async def list_by_owner(self, team_id: str, owner: str) -> list[ConnectionRecord]:
        mine = [r for r in self._records.values() if r.team_id == team_id and r.owner == owner]
        mine.sort(key=lambda r: connection_name_key(r.name))
        return [r.model_copy(deep=True) for r in mine]

    async def find_by_name(self, team_id: str, owner: str, name: str) -> ConnectionRecord | None:
        key = connection_name_key(name)
        found = next(
            (
                r
                for r in self._records.values()
                if r.team_id == team_id and r.owner == owner and connection_name_key(r.name) == key
            ),
            None,
        )
        return found.model_copy(deep=True) if found is not None else None

    async def replace(self, record: ConnectionRecord) -> None:
        if self._stored(record.team_id, record.id) is None:
            return
        if self._clash(record):
            raise DuplicateConnectionName(record.name)
        self._records[record.id] = record.model_copy(deep=True)

    async def delete(self, team_id: str, connection_id: str) -> bool:
        if self._stored(team_id, connection_id) is None:
            return False
        del self._records[connection_id]
        return True

    async def stale_keys(self, current_key_id: str) -> list[ConnectionRecord]:
        return [
            r.model_copy(deep=True) for r in self._records.values() if r.key_id != current_key_id
        ]

    async def set_ciphertext(
        self, connection_id: str, old_key_id: str, ciphertext: str, key_id: str
    ) -> bool:
        record = self._records.get(connection_id)
        if record is None or record.key_id != old_key_id:
            return False
        if record.ciphertext == ciphertext and record.key_id == key_id:
            return False  # nothing modified, as MongoDB's modified_count says
        record.ciphertext = ciphertext
        record.key_id = key_id
        return True
