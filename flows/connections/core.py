"""Connections: named credentials that flows use and nobody can read (SPEC §6).

A connection belongs to the user who created it. Its secret fields are encrypted together
into one Fernet token (`flows.secrets`); the record keeps that ciphertext, which key made
it, and a masked hint — nothing else about the secret. Decrypted values reach exactly one
place, `ConnectionCaller.request` (`flows.connections.http_step`), which turns them into
request headers and scrubs them from anything it returns or raises.

Flow slots (`FlowRecord.bindings`): a flow declares connection slots; the owner of a
connection may attach it to a slot of a flow on which they may attach connections
(`Action.ATTACH_CONNECTION`), and the slot records who added it. Steps then act as that
person's connection, whoever edits or runs the flow — co-owners use it in this flow only
and can never see it, list it among their own, or attach it elsewhere. Per slot, owners
choose for run-only users: use the owner's connection, or have the runner provide their
own (then the run modal asks the runner for one of theirs, and the run records which).
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping
from typing import Any

from flows.connections import forms
from flows.connections.errors import (
    BindingsChanged,
    ConnectionNotFound,
    ConnectionProblem,
    ConnectionsNotAllowed,
    DuplicateConnectionName,
    FlowGone,
    NoSuchSlot,
    RunnerChoiceProblem,
    SlotKindMismatch,
    UnknownConnectionKind,
)
from flows.connections.http_step import ConnectionCaller, HttpStepFailed, StepRequest
from flows.connections.model import (
    KINDS,
    ConnectionRecord,
    ConnectionStore,
    FlowBindingStore,
    SlotState,
    binding_for,
    kind_label,
    slot_accepts,
    slot_spec,
    slot_specs,
    slots_runner_provides,
)
from flows.http_policy import MAX_RESPONSE_BYTES, HttpClient
from flows.permissions import Access, Action, allowed
from flows.ports import Clock, Directory, IdGenerator
from flows.records import FlowRecord, SlotBinding
from flows.secrets import SecretBox

log = logging.getLogger(__name__)

# Compare-and-swap attempts on a flow's bindings before giving up.
_BINDING_ATTEMPTS = 8


class ConnectionCore:
    """Connections and flow slots, given the flow and the person's access (the use cases
    in `flows.connections.service` decide the access)."""

    def __init__(
        self,
        store: ConnectionStore,
        flows: FlowBindingStore,
        box: SecretBox,
        clock: Clock,
        ids: IdGenerator,
        http: HttpClient | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
        *,
        directory: Directory,
    ) -> None:
        self.store = store
        self.flows = flows
        self.box = box
        self.clock = clock
        self.ids = ids
        self.directory = directory
        self.caller = ConnectionCaller(box, http, max_response_bytes)

    # ----------------------------------------------------------------- own connections

    async def create(
        self,
        team_id: str,
        owner: str,
        *,
        name: str,
        kind: str,
        base_url: str,
        secrets: Mapping[str, str | None],
        header_name: str | None = None,
    ) -> ConnectionRecord:
        if kind not in KINDS:
            raise UnknownConnectionKind(kind)
        name = forms.clean_name(name)
        values = forms.clean_secrets(kind, secrets)
        now = self.clock.now()
        record = ConnectionRecord(
            id=self.ids.new_id("K"),
            team_id=team_id,
            owner=owner,
            name=name,
            kind=kind,  # type: ignore[arg-type]
            base_url=forms.clean_base_url(base_url),
            header_name=forms.clean_header_name(kind, header_name),
            ciphertext=self.box.encrypt(values),
            key_id=self.box.current_key_id,
            hint=forms.hint(kind, values),
            created_at=now,
            updated_at=now,
        )
        if await self.store.find_by_name(team_id, owner, name) is not None:
            raise DuplicateConnectionName(name)
        await self.store.insert(record)
        log.info("connection %s (%s) created by %s", record.id, kind, owner)
        return record

    async def mine(self, team_id: str, owner: str) -> list[ConnectionRecord]:
        return await self.store.list_by_owner(team_id, owner)

    async def own(self, team_id: str, owner: str, connection_id: str) -> ConnectionRecord:
        """The owner's own connection; anyone else gets ConnectionNotFound (not "forbidden":
        they learn nothing about connections that are not theirs)."""
        record = await self.store.get(team_id, connection_id)
        if record is None or record.owner != owner:
            raise ConnectionNotFound()
        return record

    async def own_by_name(self, team_id: str, owner: str, name: str) -> ConnectionRecord:
        record = await self.store.find_by_name(team_id, owner, " ".join(name.split()))
        if record is None:
            raise ConnectionNotFound(name)
        return record

    async def update_credentials(
        self,
        team_id: str,
        actor: str,
        connection_id: str,
        *,
        secrets: Mapping[str, str | None],
        base_url: str | None = None,
        header_name: str | None = None,
        name: str | None = None,
    ) -> ConnectionRecord:
        """Only the owner updates a connection; every flow using it uses the new values."""
        record = await self.own(team_id, actor, connection_id)
        values = forms.clean_secrets(record.kind, secrets)
        changes: dict[str, Any] = {
            "ciphertext": self.box.encrypt(values),
            "key_id": self.box.current_key_id,
            "hint": forms.hint(record.kind, values),
            "updated_at": self.clock.now(),
        }
        if base_url is not None:
            changes["base_url"] = forms.clean_base_url(base_url)
        if header_name is not None:
            changes["header_name"] = forms.clean_header_name(record.kind, header_name)
        if name is not None and forms.clean_name(name) != record.name:
            clean = forms.clean_name(name)
            other = await self.store.find_by_name(team_id, actor, clean)
            if other is not None and other.id != record.id:
                raise DuplicateConnectionName(clean)
            changes["name"] = clean
        updated = record.model_copy(update=changes)
        await self.store.replace(updated)
        log.info("connection %s credentials updated by %s", record.id, actor)
        return updated

    async def usage(self, team_id: str, connection_id: str) -> list[FlowRecord]:
        """The flows with a slot filled by this connection."""
        return await self.flows.flows_using_connection(team_id, connection_id)

    async def delete(self, team_id: str, actor: str, connection_id: str) -> list[FlowRecord]:
        """Delete an own connection and empty the slots it filled; returns those flows."""
        record = await self.own(team_id, actor, connection_id)
        affected = await self.usage(team_id, record.id)
        await self.store.delete(team_id, record.id)
        for flow in affected:

            def empty(current: FlowRecord) -> list[SlotBinding]:
                return [
                    b.model_copy(update={"connection_id": None, "added_by": None})
                    if b.connection_id == record.id
                    else b
                    for b in current.bindings
                ]

            try:
                await self._change_bindings(flow, empty)
            except ConnectionProblem:
                log.warning(
                    "flow %s: could not empty the slots of connection %s", flow.id, record.id
                )
        log.info("connection %s deleted by %s (%d flows affected)", record.id, actor, len(affected))
        return affected

    # ----------------------------------------------------------------- flow slots

    async def slots(self, flow: FlowRecord) -> list[SlotState]:
        ids = [b.connection_id for b in flow.bindings if b.connection_id]
        found = {c.id: c for c in await self.store.get_many(flow.team_id, ids)} if ids else {}
        states: list[SlotState] = []
        for spec in slot_specs(flow):
            binding = binding_for(flow, spec.slot)
            states.append(
                SlotState(
                    slot=spec.slot,
                    kind=getattr(spec, "kind", None),
                    description=getattr(spec, "description", "") or "",
                    binding=binding,
                    connection=found.get(binding.connection_id or ""),
                )
            )
        return states

    def _require_slot(self, flow: FlowRecord, slot: str) -> Any:
        spec = slot_spec(flow, slot)
        if spec is None:
            raise NoSuchSlot(flow.name, slot, [s.slot for s in slot_specs(flow)])
        return spec

    async def _change_bindings(
        self,
        flow: FlowRecord,
        change: Callable[[FlowRecord], list[SlotBinding]],
    ) -> FlowRecord:
        """Apply `change` to the flow's bindings, re-reading and retrying when someone else
        changed them meanwhile (compare-and-swap)."""
        for _attempt in range(_BINDING_ATTEMPTS):
            saved = await self.flows.set_bindings(
                flow.team_id, flow.id, change(flow), list(flow.bindings)
            )
            if saved is not None:
                return saved
            latest = await self.flows.get(flow.team_id, flow.id)
            if latest is None:
                raise FlowGone(flow.name)
            flow = latest
        raise BindingsChanged(flow.name)

    async def _save_binding(self, flow: FlowRecord, binding: SlotBinding) -> FlowRecord:
        def change(current: FlowRecord) -> list[SlotBinding]:
            kept = binding_for(current, binding.slot)
            updated = kept.model_copy(
                update={k: getattr(binding, k) for k in binding.model_fields_set}
            )
            bindings = [b for b in current.bindings if b.slot != binding.slot] + [updated]
            order = {s.slot: i for i, s in enumerate(slot_specs(current))}
            return sorted(bindings, key=lambda b: order.get(b.slot, len(order)))

        return await self._change_bindings(flow, change)

    async def attach(
        self, flow: FlowRecord, access: Access, actor: str, slot: str, connection_id: str
    ) -> FlowRecord:
        """Fill a slot with one of the actor's own connections; the slot records the actor."""
        if not allowed(Action.ATTACH_CONNECTION, flow, access):
            raise ConnectionsNotAllowed("attach", flow.name, actor)
        spec = self._require_slot(flow, slot)
        record = await self.own(flow.team_id, actor, connection_id)
        if not slot_accepts(getattr(spec, "kind", None), record.kind):
            raise SlotKindMismatch(slot, kind_label(spec.kind), record.name, record.label)
        saved = await self._save_binding(
            flow, SlotBinding(slot=slot, connection_id=record.id, added_by=actor)
        )
        log.info("flow %s slot %s: connection %s attached by %s", flow.id, slot, record.id, actor)
        return saved

    async def detach(self, flow: FlowRecord, access: Access, actor: str, slot: str) -> FlowRecord:
        if not allowed(Action.ATTACH_CONNECTION, flow, access):
            raise ConnectionsNotAllowed("change", flow.name, actor)
        self._require_slot(flow, slot)
        return await self._save_binding(
            flow, SlotBinding(slot=slot, connection_id=None, added_by=None)
        )

    async def set_runner_provides(
        self, flow: FlowRecord, access: Access, actor: str, slot: str, runner_provides: bool
    ) -> FlowRecord:
        """Owners choose per slot: run-only users use the owner's connection, or their own."""
        if not allowed(Action.ATTACH_CONNECTION, flow, access):
            raise ConnectionsNotAllowed("change", flow.name, actor)
        self._require_slot(flow, slot)
        return await self._save_binding(
            flow, SlotBinding(slot=slot, runner_provides=runner_provides)
        )

    async def runner_options(
        self, flow: FlowRecord, user: str, slot: str
    ) -> list[ConnectionRecord]:
        """The user's own connections that fit a slot (for the run modal's picker)."""
        spec = slot_spec(flow, slot)
        kind = getattr(spec, "kind", None) if spec is not None else None
        return [c for c in await self.mine(flow.team_id, user) if slot_accepts(kind, c.kind)]

    async def check_runner_choices(
        self, flow: FlowRecord, access: Access, user: str, choices: Mapping[str, str | None]
    ) -> dict[str, str]:
        """Validate the run modal's choices: every slot the user must provide is filled
        with one of their own connections of a fitting kind. Returns {slot: connection id};
        raises RunnerChoiceProblem naming the first slot that is not."""
        chosen: dict[str, str] = {}
        for slot in slots_runner_provides(flow, access):
            connection_id = choices.get(slot)
            if not connection_id:
                raise RunnerChoiceProblem(slot, "missing")
            record = await self.store.get(flow.team_id, connection_id)
            spec = slot_spec(flow, slot)
            if record is None or record.owner != user:
                raise RunnerChoiceProblem(slot, "not_yours")
            if not slot_accepts(getattr(spec, "kind", None), record.kind):
                raise RunnerChoiceProblem(slot, "wrong_kind")
            chosen[slot] = record.id
        return chosen

    # ----------------------------------------------------------------- steps

    async def connection_for_step(
        self,
        flow: FlowRecord,
        slot: str,
        started_by: str | None,
        runner_choices: Mapping[str, str] | None,
        runner_is_owner: bool,
    ) -> ConnectionRecord:
        """Which connection a step of a run uses for `slot`.

        A slot "provided by the run-only user" uses what the run's starter chose, and only
        if it is the starter's own; otherwise the connection the slot holds, which acts as
        whoever attached it (and is still that person's own)."""
        if slot_spec(flow, slot) is None:
            raise HttpStepFailed(f"the flow has no connection slot `{slot}`")
        binding = binding_for(flow, slot)
        use_runner = binding.runner_provides and (not runner_is_owner or not binding.connection_id)
        if use_runner and started_by:
            return await self._runner_connection(flow, slot, started_by, runner_choices)
        if not binding.connection_id:
            raise HttpStepFailed(
                f"slot `{slot}` has no connection: an owner attaches one with "
                f'`/flow connections "{flow.name}"`'
            )
        record = await self.store.get(flow.team_id, binding.connection_id)
        if record is None or record.owner != binding.added_by:
            raise HttpStepFailed(
                f"the connection in slot `{slot}` was deleted: an owner attaches another with "
                f'`/flow connections "{flow.name}"`'
            )
        return record

    async def _runner_connection(
        self,
        flow: FlowRecord,
        slot: str,
        started_by: str,
        runner_choices: Mapping[str, str] | None,
    ) -> ConnectionRecord:
        chosen = (runner_choices or {}).get(slot)
        if not chosen:
            raise HttpStepFailed(
                f"slot `{slot}` is provided by the person who runs the flow, "
                "and no connection was chosen"
            )
        record = await self.store.get(flow.team_id, chosen)
        if record is None or record.owner != started_by:
            raise HttpStepFailed(
                f"the connection chosen for `{slot}` no longer exists or is not the runner's"
            )
        return record

    async def http_request(
        self,
        record: ConnectionRecord,
        *,
        method: str,
        path: str,
        headers: Mapping[str, Any] | None = None,
        query: Mapping[str, Any] | None = None,
        json_body: Any = None,
        send_json: bool = False,
        timeout: float | None = None,
    ) -> dict[str, Any]:
        """Send one request through a connection (see `ConnectionCaller.request`)."""
        step = StepRequest(method, path, headers, query, json_body, send_json, timeout)
        return await self.caller.request(record, step)
