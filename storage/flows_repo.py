"""Flows and their earlier versions in MongoDB (collections `flows` and `flow_versions`).

A flow document is `FlowRecord.model_dump()` with `_id = flow.id`, the definition stored
as `flows.definition.to_dict` makes it (aliases such as `if`/`else` included), and
`name_key`, the lowercased name that the unique index keeps unique per workspace.
Definitions are read back with `definition_from_storage`: they were validated when saved.
"""

from __future__ import annotations

import asyncio
from collections import OrderedDict
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from motor.motor_asyncio import AsyncIOMotorDatabase
from pymongo import ASCENDING, ReturnDocument
from pymongo.errors import DuplicateKeyError

from flows.catalog import FlowNotFound, FlowVersion, NameTaken, VersionConflict
from flows.definition import FlowDefinition, definition_from_storage, to_dict
from flows.records import FlowRecord, Share, SlotBinding

Document = dict[str, Any]


def name_key(name: str) -> str:
    return name.strip().casefold()


def flow_to_document(flow: FlowRecord) -> Document:
    doc = flow.model_dump(mode="python", exclude={"id", "definition"})
    doc["_id"] = flow.id
    doc["definition"] = to_dict(flow.definition)
    doc["name_key"] = name_key(flow.name)
    return doc


# Flows read between two yields to the event loop (~0.05 ms each).
_PARSE_CHUNK = 50


class ParsedDefinitions:
    """Definitions read back, by (flow id, version): a version's definition never changes,
    so a flow read again (each scheduled firing, each trigger) is not parsed again. One
    per store (ids are unique in one database); the least recently used go first."""

    def __init__(self, size: int = 2048) -> None:
        self.size = size
        self._parsed: OrderedDict[tuple[str, int], FlowDefinition] = OrderedDict()

    def get(self, doc: Document) -> FlowDefinition:
        key = (str(doc["_id"]), int(doc.get("version") or 1))
        found = self._parsed.get(key)
        if found is not None:
            self._parsed.move_to_end(key)
            return found
        definition = definition_from_storage(doc["definition"])
        self._parsed[key] = definition
        if len(self._parsed) > self.size:
            self._parsed.popitem(last=False)
        return definition


def flow_from_document(doc: Document, parsed: ParsedDefinitions | None = None) -> FlowRecord:
    # The definition was validated when it was saved: validating it again on every read
    # would cost ~1 ms a flow, seconds of a blocked event loop at 10,000 flows.
    if parsed is not None:
        definition = parsed.get(doc)
    else:
        definition = definition_from_storage(doc["definition"])
    fields = {k: v for k, v in doc.items() if k not in ("_id", "name_key", "definition")}
    return FlowRecord.model_validate({**fields, "id": doc["_id"], "definition": definition})


class MongoFlowStore:
    """Implements `flows.catalog.FlowStore`."""

    def __init__(self, db: AsyncIOMotorDatabase[Document]) -> None:
        self.flows = db["flows"]
        self.versions_collection = db["flow_versions"]
        self.parsed = ParsedDefinitions()

    async def ensure_indexes(self) -> None:
        await self.flows.create_index(
            [("team_id", ASCENDING), ("name_key", ASCENDING)], unique=True, name="team_name"
        )
        await self.flows.create_index(
            [("team_id", ASCENDING), ("creator", ASCENDING)], name="team_creator"
        )
        await self.flows.create_index(
            [("team_id", ASCENDING), ("shares.principal", ASCENDING)], name="team_shares"
        )
        await self.versions_collection.create_index(
            [("flow_id", ASCENDING), ("version", ASCENDING)], unique=True, name="flow_version"
        )
        # issue 8: enabled flows by trigger type (the scheduler, event triggers).
        await self.flows.create_index(
            [
                ("definition.trigger.type", ASCENDING),
                ("enabled", ASCENDING),
                ("team_id", ASCENDING),
            ],
            name="trigger_type",
        )

    async def insert(self, flow: FlowRecord) -> None:
        try:
            await self.flows.insert_one(flow_to_document(flow))
        except DuplicateKeyError:
            raise NameTaken(flow.name) from None

    async def get(self, team_id: str, flow_id: str) -> FlowRecord | None:
        doc = await self.flows.find_one({"_id": flow_id, "team_id": team_id})
        return flow_from_document(doc, self.parsed) if doc else None

    async def get_by_name(self, team_id: str, name: str) -> FlowRecord | None:
        doc = await self.flows.find_one({"team_id": team_id, "name_key": name_key(name)})
        return flow_from_document(doc, self.parsed) if doc else None

    async def list_candidates(self, team_id: str, user_id: str) -> list[FlowRecord]:
        # Shares with groups and channels are kept: membership is decided by the caller.
        query = {
            "team_id": team_id,
            "$or": [
                {"creator": user_id},
                {"shares.principal": user_id},
                {"shares.principal": {"$regex": "^[SCG]"}},
            ],
        }
        flows: list[FlowRecord] = []
        async for doc in self.flows.find(query):
            flows.append(flow_from_document(doc, self.parsed))
            if len(flows) % _PARSE_CHUNK == 0:
                # Parsing thousands of definitions would hold the event loop for seconds
                # (a resync at 10,000 flows): let acknowledgements and wake-ups through.
                await asyncio.sleep(0)
        return flows

    # --- issue 8 (schedules and automated triggers): queries by trigger type and by id alone

    async def list_enabled(self, trigger_type: str, team_id: str | None = None) -> list[FlowRecord]:
        """Enabled flows whose trigger has this type (all workspaces unless `team_id`)."""
        query: Document = {"enabled": True, "definition.trigger.type": _stored_type(trigger_type)}
        if team_id is not None:
            query["team_id"] = team_id
        return await self._parsed(self.flows.find(query))

    async def _parsed(self, cursor: Any) -> list[FlowRecord]:
        flows: list[FlowRecord] = []
        async for doc in cursor:
            flows.append(flow_from_document(doc, self.parsed))
            if len(flows) % _PARSE_CHUNK == 0:
                await asyncio.sleep(0)  # thousands of flows: let the event loop breathe
        return flows

    async def enabled_versions(self, trigger_type: str) -> dict[str, tuple[str, int]]:
        """flow id -> (team id, version) of the enabled flows with this trigger type: a
        projection, nothing parsed (the schedule's resync compares versions with it)."""
        query: Document = {"enabled": True, "definition.trigger.type": _stored_type(trigger_type)}
        cursor = self.flows.find(query, projection={"team_id": 1, "version": 1})
        versions: dict[str, tuple[str, int]] = {}
        async for doc in cursor:
            versions[str(doc["_id"])] = (str(doc["team_id"]), int(doc.get("version") or 1))
            if len(versions) % (_PARSE_CHUNK * 20) == 0:
                await asyncio.sleep(0)
        return versions

    async def enabled_versions_of(self, flow_ids: Sequence[str]) -> dict[str, tuple[str, int]]:
        """`enabled_versions` of these flows only (schedule wake-ups check that the flows
        they armed are still the enabled versions): one `_id: {$in}` projection."""
        query: Document = {"_id": {"$in": list(flow_ids)}, "enabled": True}
        cursor = self.flows.find(query, projection={"team_id": 1, "version": 1})
        return {
            str(doc["_id"]): (str(doc["team_id"]), int(doc.get("version") or 1))
            async for doc in cursor
        }

    async def get_many(self, flow_ids: Sequence[str]) -> list[FlowRecord]:
        """The flows with these ids (any workspace; unknown ids are left out)."""
        flows: list[FlowRecord] = []
        for start in range(0, len(flow_ids), 500):
            chunk = list(flow_ids[start : start + 500])
            flows.extend(await self._parsed(self.flows.find({"_id": {"$in": chunk}})))
        return flows

    async def get_by_id(self, flow_id: str) -> FlowRecord | None:
        """A flow by its id in any workspace (webhooks arrive with the flow id only)."""
        doc = await self.flows.find_one({"_id": flow_id})
        return flow_from_document(doc, self.parsed) if doc else None

    async def list_team(self, team_id: str) -> list[FlowRecord]:
        cursor = self.flows.find({"team_id": team_id})
        return [flow_from_document(doc, self.parsed) async for doc in cursor]

    async def replace_definition(
        self, current: FlowRecord, definition: FlowDefinition, by: str, at: datetime
    ) -> FlowRecord:
        # Keep the version being replaced first: if we stop between the two writes, the
        # history has one copy too many (idempotent), never one too few.
        await self._archive(current)
        update = {
            "definition": to_dict(definition),
            "name_key": name_key(definition.name),
            "version": current.version + 1,
            "updated_at": at,
            "updated_by": by,
        }
        try:
            doc = await self.flows.find_one_and_update(
                {"_id": current.id, "team_id": current.team_id, "version": current.version},
                {"$set": update},
                return_document=ReturnDocument.AFTER,
            )
        except DuplicateKeyError:
            raise NameTaken(definition.name) from None
        if doc is None:
            latest = await self.get(current.team_id, current.id)
            if latest is None:
                raise FlowNotFound(current.id)
            raise VersionConflict(current.name, current.version, latest.version, latest.updated_by)
        return flow_from_document(doc, self.parsed)

    async def _archive(self, flow: FlowRecord) -> None:
        await self.versions_collection.update_one(
            {"_id": f"{flow.id}:{flow.version}"},
            {
                "$setOnInsert": {
                    "flow_id": flow.id,
                    "team_id": flow.team_id,
                    "version": flow.version,
                    "definition": to_dict(flow.definition),
                    "saved_at": flow.updated_at,
                    "saved_by": flow.updated_by,
                }
            },
            upsert=True,
        )

    async def set_webhook_hash(self, team_id: str, flow_id: str, token_hash: str) -> None:
        await self.flows.update_one(
            {"_id": flow_id, "team_id": team_id}, {"$set": {"webhook_token_hash": token_hash}}
        )

    async def set_enabled(
        self, team_id: str, flow_id: str, enabled: bool, by: str, at: datetime
    ) -> FlowRecord | None:
        # Not a new version: updated_by stays the last editor of the definition.
        doc = await self.flows.find_one_and_update(
            {"_id": flow_id, "team_id": team_id},
            {"$set": {"enabled": enabled, "enabled_changed_by": by, "enabled_changed_at": at}},
            return_document=ReturnDocument.AFTER,
        )
        return flow_from_document(doc, self.parsed) if doc else None

    # --- sharing (issue 5): the sharing list changes without a new definition version.
    async def set_shares(
        self, team_id: str, flow_id: str, shares: list[Share], expected: list[Share]
    ) -> FlowRecord | None:
        """Replace `shares` if they still equal `expected` (compare-and-swap); None if the
        list changed meanwhile (re-read and retry) or the flow is gone."""
        doc = await self.flows.find_one_and_update(
            {
                "_id": flow_id,
                "team_id": team_id,
                "shares": [s.model_dump(mode="python") for s in expected],
            },
            {"$set": {"shares": [s.model_dump(mode="python") for s in shares]}},
            return_document=ReturnDocument.AFTER,
        )
        return flow_from_document(doc, self.parsed) if doc else None

    # --- connections (issue 7): slots are filled without a new definition version.
    async def set_bindings(
        self, team_id: str, flow_id: str, bindings: list[SlotBinding], expected: list[SlotBinding]
    ) -> FlowRecord | None:
        """Replace `bindings` if they still equal `expected` (compare-and-swap); None if they
        changed meanwhile (re-read and retry) or the flow is gone."""
        doc = await self.flows.find_one_and_update(
            {
                "_id": flow_id,
                "team_id": team_id,
                "bindings": [b.model_dump(mode="python") for b in expected],
            },
            {"$set": {"bindings": [b.model_dump(mode="python") for b in bindings]}},
            return_document=ReturnDocument.AFTER,
        )
        return flow_from_document(doc, self.parsed) if doc else None

    async def flows_using_connection(self, team_id: str, connection_id: str) -> list[FlowRecord]:
        query = {"team_id": team_id, "bindings.connection_id": connection_id}
        return [flow_from_document(doc, self.parsed) async for doc in self.flows.find(query)]

    async def flows_using_connections(
        self, team_id: str, connection_ids: Sequence[str]
    ) -> list[FlowRecord]:
        query = {"team_id": team_id, "bindings.connection_id": {"$in": list(connection_ids)}}
        return [flow_from_document(doc, self.parsed) async for doc in self.flows.find(query)]

    async def delete(self, team_id: str, flow_id: str) -> bool:
        result = await self.flows.delete_one({"_id": flow_id, "team_id": team_id})
        if result.deleted_count:
            await self.versions_collection.delete_many({"flow_id": flow_id, "team_id": team_id})
        return bool(result.deleted_count)

    async def versions(self, team_id: str, flow_id: str) -> list[FlowVersion]:
        history = [
            FlowVersion(
                flow_id=flow_id,
                version=int(doc["version"]),
                definition=definition_from_storage(doc["definition"]),
                saved_at=doc["saved_at"],
                saved_by=doc["saved_by"],
            )
            async for doc in self.versions_collection.find(
                {"flow_id": flow_id, "team_id": team_id}
            ).sort("version", ASCENDING)
        ]
        current = await self.get(team_id, flow_id)
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
        return history


def _stored_type(trigger_type: str) -> Any:
    """The filter on `definition.trigger.type` for this type: a stored definition leaves
    the default (manual) trigger out, so "manual" also matches a missing type (`$in` with
    null; a field-level operator, still served by an index)."""
    return {"$in": [trigger_type, None]} if trigger_type == "manual" else trigger_type
