"""`MemoryFlowStore` (flows and their versions) and `MemoryUserStore`."""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from datetime import datetime
from typing import Any

from flows.catalog import FlowNotFound, FlowVersion, NameTaken, VersionConflict
from flows.definition import FlowDefinition
from flows.records import FlowRecord, Share, SlotBinding


def name_key(name: str) -> str:
    return name.strip().casefold()


def _dumped(items: Iterable[Share | SlotBinding]) -> list[dict[str, Any]]:
    return [item.model_dump(mode="python") for item in items]


class MemoryFlowStore:
    """`flows.catalog.FlowStore` (and the sharing and connections views of it) in memory
    (MongoDB: `storage.flows_repo.MongoFlowStore`)."""

    def __init__(self) -> None:
        self._flows: dict[str, FlowRecord] = {}
        # (flow id, version) → the archived version; the first copy kept wins.
        self._versions: dict[tuple[str, int], FlowVersion] = {}
        self._teams: dict[tuple[str, int], str] = {}

    def _name_taken(self, team_id: str, name: str, other_than: str | None = None) -> bool:
        key = name_key(name)
        return any(
            f.team_id == team_id and name_key(f.name) == key and f.id != other_than
            for f in self._flows.values()
        )

    def _stored(self, team_id: str, flow_id: str) -> FlowRecord | None:
        flow = self._flows.get(flow_id)
        return flow if flow is not None and flow.team_id == team_id else None

    @staticmethod
    def _copy(flow: FlowRecord | None) -> FlowRecord | None:
        return flow.model_copy(deep=True) if flow is not None else None

    async def insert(self, flow: FlowRecord) -> None:
        if flow.id in self._flows or self._name_taken(flow.team_id, flow.name):
            raise NameTaken(flow.name)
        self._flows[flow.id] = flow.model_copy(deep=True)

    async def get(self, team_id: str, flow_id: str) -> FlowRecord | None:
        return self._copy(self._stored(team_id, flow_id))

    async def get_by_name(self, team_id: str, name: str) -> FlowRecord | None:
        key = name_key(name)
        found = next(
            (f for f in self._flows.values() if f.team_id == team_id and name_key(f.name) == key),
            None,
        )
        return self._copy(found)

    async def list_candidates(self, team_id: str, user_id: str) -> list[FlowRecord]:
        # Shares with groups and channels are kept: membership is decided by the caller.
        def candidate(flow: FlowRecord) -> bool:
            return flow.creator == user_id or any(
                s.principal == user_id or s.principal[:1] in ("S", "C", "G") for s in flow.shares
            )

        return [
            f.model_copy(deep=True)
            for f in self._flows.values()
            if f.team_id == team_id and candidate(f)
        ]

    async def list_enabled(self, trigger_type: str, team_id: str | None = None) -> list[FlowRecord]:
        return [
            f.model_copy(deep=True)
            for f in self._flows.values()
            if f.enabled
            and f.definition.trigger.type == trigger_type
            and (team_id is None or f.team_id == team_id)
        ]

    async def enabled_versions(self, trigger_type: str) -> dict[str, tuple[str, int]]:
        return {f.id: (f.team_id, f.version) for f in await self.list_enabled(trigger_type)}

    async def enabled_versions_of(self, flow_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        found = (self._flows.get(flow_id) for flow_id in flow_ids)
        return {f.id: (f.team_id, f.version) for f in found if f is not None and f.enabled}

    async def get_many(self, flow_ids: Sequence[str]) -> list[FlowRecord]:
        return [self._flows[i].model_copy(deep=True) for i in flow_ids if i in self._flows]

    async def get_by_id(self, flow_id: str) -> FlowRecord | None:
        return self._copy(self._flows.get(flow_id))

    async def list_team(self, team_id: str) -> list[FlowRecord]:
        return [f.model_copy(deep=True) for f in self._flows.values() if f.team_id == team_id]

    async def replace_definition(
        self, current: FlowRecord, definition: FlowDefinition, by: str, at: datetime
    ) -> FlowRecord:
        # Archived first, as the MongoDB store does (one copy too many, never too few).
        self._archive(current)
        stored = self._stored(current.team_id, current.id)
        if stored is None or stored.version != current.version:
            if stored is None:
                raise FlowNotFound(current.id)
            raise VersionConflict(current.name, current.version, stored.version, stored.updated_by)
        if self._name_taken(current.team_id, definition.name, other_than=current.id):
            raise NameTaken(definition.name)
        updated = stored.model_copy(
            update={
                "definition": definition.model_copy(deep=True),
                "version": current.version + 1,
                "updated_at": at,
                "updated_by": by,
            }
        )
        self._flows[current.id] = updated
        return updated.model_copy(deep=True)

    def _archive(self, flow: FlowRecord) -> None:
        key = (flow.id, flow.version)
        if key not in self._versions:
            self._versions[key] = FlowVersion(
                flow.id,
                flow.version,
                flow.definition.model_copy(deep=True),
                flow.updated_at,
                flow.updated_by,
            )
            self._teams[key] = flow.team_id

    def _update(self, team_id: str, flow_id: str, **fields: Any) -> FlowRecord | None:
        stored = self._stored(team_id, flow_id)
        if stored is None:
            return None
        updated = stored.model_copy(update=fields, deep=True)
        self._flows[flow_id] = updated
        return updated.model_copy(deep=True)

    async def set_webhook_hash(self, team_id: str, flow_id: str, token_hash: str) -> None:
        self._update(team_id, flow_id, webhook_token_hash=token_hash)

    async def set_enabled(
        self, team_id: str, flow_id: str, enabled: bool, by: str, at: datetime
    ) -> FlowRecord | None:
        # Not a new version: updated_by stays the last editor of the definition. The
        # MongoDB store also keeps who and when in fields a FlowRecord does not have.
        return self._update(team_id, flow_id, enabled=enabled)

    async def set_shares(
        self, team_id: str, flow_id: str, shares: list[Share], expected: list[Share]
    ) -> FlowRecord | None:
        stored = self._stored(team_id, flow_id)
        if stored is None or _dumped(stored.shares) != _dumped(expected):
            return None
        return self._update(team_id, flow_id, shares=[s.model_copy() for s in shares])

    async def set_bindings(
        self, team_id: str, flow_id: str, bindings: list[SlotBinding], expected: list[SlotBinding]
    ) -> FlowRecord | None:
        stored = self._stored(team_id, flow_id)
        if stored is None or _dumped(stored.bindings) != _dumped(expected):
            return None
        return self._update(team_id, flow_id, bindings=[b.model_copy() for b in bindings])

    async def flows_using_connection(self, team_id: str, connection_id: str) -> list[FlowRecord]:
        return await self.flows_using_connections(team_id, [connection_id])

    async def flows_using_connections(
        self, team_id: str, connection_ids: Sequence[str]
    ) -> list[FlowRecord]:
        wanted = set(connection_ids)
        return [
            f.model_copy(deep=True)
            for f in self._flows.values()
            if f.team_id == team_id and any(b.connection_id in wanted for b in f.bindings)
        ]

    async def delete(self, team_id: str, flow_id: str) -> bool:
        if self._stored(team_id, flow_id) is None:
            return False
        del self._flows[flow_id]
        for key in [k for k in self._versions if k[0] == flow_id and self._teams[k] == team_id]:
            del self._versions[key]
            del self._teams[key]
        return True

    async def versions(self, team_id: str, flow_id: str) -> list[FlowVersion]:
        history = sorted(
            (v for k, v in self._versions.items() if k[0] == flow_id and self._teams[k] == team_id),
            key=lambda v: v.version,
        )
        current = self._stored(team_id, flow_id)
        if current is not None and all(v.version != current.version for v in history):
            history.append(
                FlowVersion(
                    flow_id,
                    current.version,
                    current.definition,
                    current.updated_at,
                    current.updated_by,
                )
            )
        return [
            FlowVersion(
                v.flow_id, v.version, v.definition.model_copy(deep=True), v.saved_at, v.saved_by
            )
            for v in history
        ]


class MemoryUserStore:
    """`flows.catalog.UserStore` in memory (MongoDB: `storage.users_repo`)."""

    def __init__(self) -> None:
        self._welcome_seen: dict[tuple[str, str], datetime] = {}

    async def has_seen_welcome(self, team_id: str, user_id: str) -> bool:
        return (team_id, user_id) in self._welcome_seen

    async def mark_welcome_seen(self, team_id: str, user_id: str, at: datetime) -> None:
        key = (team_id, user_id)
        # The first time seen is kept (`$min`).
        self._welcome_seen[key] = min(at, self._welcome_seen.get(key, at))
