"""The connection use cases the Slack listeners call: each takes the workspace and the
person, decides through `flows.permissions`, and refuses with `flows.connections.errors`
(or `flows.errors.FlowNotFound`). What they return is data for `cards.connections`."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Literal

from flows.connections.core import ConnectionCore
from flows.connections.errors import ConnectionProblem, ConnectionsNotAllowed
from flows.connections.forms import ConnectionForm
from flows.connections.model import (
    DEFAULT_KIND,
    KINDS,
    ConnectionRecord,
    SlotState,
    slot_accepts,
    slot_spec,
    slots_runner_provides,
)
from flows.errors import FlowNotFound
from flows.permissions import Access, Action, allowed, resolve_access
from flows.records import FlowRecord

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OwnConnection:
    """One of a person's connections and the names of the flows whose slots it fills."""

    record: ConnectionRecord
    used_by: list[str] = field(default_factory=list)


@dataclass(frozen=True)
class SlotsPanel:
    """A flow's connection slots as `viewer` may see them. `may_attach`: the viewer may
    fill and change slots; `mine`: the viewer's own connections (only when they may)."""

    flow: FlowRecord
    viewer: str
    may_attach: bool
    slots: list[SlotState]
    mine: list[ConnectionRecord]

    def fitting(self, state: SlotState) -> list[ConnectionRecord]:
        return [c for c in self.mine if slot_accepts(state.kind, c.kind)]


@dataclass(frozen=True)
class SlotTarget:
    """A new connection is made for this slot; `kind` is the form's first choice."""

    flow: FlowRecord
    slot: str
    kind: str


@dataclass(frozen=True)
class Attached:
    flow: FlowRecord
    slot: str
    record: ConnectionRecord


@dataclass(frozen=True)
class SlotChange:
    """A click in a flow's Connections modal."""

    what: Literal["attach", "detach", "mode"]
    slot: str
    connection_id: str = ""
    runner_provides: bool = False


@dataclass(frozen=True)
class SlotChanged:
    change: SlotChange
    panel: SlotsPanel
    refused: ConnectionProblem | None = None


@dataclass(frozen=True)
class Saved:
    """A saved connect form. With a slot target: the flow (None if it is gone) and why
    attaching was refused, if it was; `panel` when the form was stacked on the flow's
    Connections modal, else `listing` (the person's connections)."""

    record: ConnectionRecord
    updated: bool
    slot: str | None = None
    flow: FlowRecord | None = None
    attach_refused: ConnectionProblem | None = None
    panel: SlotsPanel | None = None
    listing: list[OwnConnection] = field(default_factory=list)


@dataclass(frozen=True)
class DeleteAsked:
    """`deleted` False: flows use it (`used_by`), confirm first. True: it is gone, and
    `used_by` names the flows that need another connection now."""

    record: ConnectionRecord
    deleted: bool
    used_by: list[str]
    listing: list[OwnConnection] = field(default_factory=list)


@dataclass(frozen=True)
class RunnerSlot:
    """A slot the person starting a run provides, and their connections that fit it."""

    slot: str
    kind: str | None
    description: str
    options: list[ConnectionRecord]


class ConnectionService(ConnectionCore):
    # ----------------------------------------------------------------- lookups

    async def _flow(self, team_id: str, ref: str) -> FlowRecord:
        """A flow by id or by name (ignoring case)."""
        ref = ref.strip()
        flow = None
        if ref:
            flow = await self.flows.get(team_id, ref) or await self.flows.get_by_name(team_id, ref)
        if flow is None:
            raise FlowNotFound(ref)
        return flow

    async def _access(self, flow: FlowRecord, user_id: str) -> Access:
        return await resolve_access(flow, user_id, self.directory)

    async def _attachable(self, team_id: str, user_id: str, ref: str) -> tuple[FlowRecord, Access]:
        flow = await self._flow(team_id, ref)
        access = await self._access(flow, user_id)
        if not allowed(Action.ATTACH_CONNECTION, flow, access):
            raise ConnectionsNotAllowed("attach", flow.name, user_id)
        return flow, access

    # ----------------------------------------------------------------- my connections

    async def my_connections(self, team_id: str, user_id: str) -> list[OwnConnection]:
        """The person's connections, each with the flows it fills a slot of (one query)."""
        records = await self.mine(team_id, user_id)
        used_by: dict[str, list[str]] = {r.id: [] for r in records}
        if records:
            for flow in await self.flows.flows_using_connections(team_id, list(used_by)):
                for connection_id in dict.fromkeys(b.connection_id for b in flow.bindings):
                    if connection_id in used_by:
                        used_by[connection_id].append(flow.name)
        return [OwnConnection(r, used_by[r.id]) for r in records]

    async def ask_delete(self, team_id: str, user_id: str, connection_id: str) -> DeleteAsked:
        """Delete a connection no flow uses; one in use is only named with its flows."""
        record = await self.own(team_id, user_id, connection_id)
        used = await self.usage(team_id, record.id)
        if used:
            return DeleteAsked(record, False, [f.name for f in used])
        return await self._delete(team_id, user_id, record)

    async def delete_confirmed(self, team_id: str, user_id: str, connection_id: str) -> DeleteAsked:
        """Delete it even though flows use it: their slots are emptied."""
        return await self._delete(team_id, user_id, await self.own(team_id, user_id, connection_id))

    async def _delete(self, team_id: str, user_id: str, record: ConnectionRecord) -> DeleteAsked:
        broken = await self.delete(team_id, user_id, record.id)
        listing = await self.my_connections(team_id, user_id)
        return DeleteAsked(record, True, [f.name for f in broken], listing)

    async def save(
        self,
        team_id: str,
        user_id: str,
        form: ConnectionForm,
        *,
        flow_id: str | None = None,
        slot: str | None = None,
        in_panel: bool = False,
    ) -> Saved:
        """Create a connection (or new credentials for one) from the connect form; with a
        flow and a slot, attach it there. Form errors raise before anything is stored."""
        record = await self._save_form(team_id, user_id, form)
        updated = form.connection_id is not None
        if flow_id and slot:
            flow = await self.flows.get(team_id, flow_id)
            if flow is not None:
                return await self._attach_saved(user_id, record, updated, flow, slot, in_panel)
        listing = await self.my_connections(team_id, user_id)
        return Saved(record, updated, slot, listing=listing)

    async def _save_form(
        self, team_id: str, user_id: str, form: ConnectionForm
    ) -> ConnectionRecord:
        if form.connection_id is not None:
            return await self.update_credentials(
                team_id,
                user_id,
                form.connection_id,
                secrets=form.secrets,
                base_url=form.base_url,
                header_name=form.header_name,
                name=form.name,
            )
        return await self.create(
            team_id,
            user_id,
            name=form.name,
            kind=form.kind or DEFAULT_KIND,
            base_url=form.base_url,
            secrets=form.secrets,
            header_name=form.header_name,
        )

    async def _attach_saved(
        self,
        user_id: str,
        record: ConnectionRecord,
        updated: bool,
        flow: FlowRecord,
        slot: str,
        in_panel: bool,
    ) -> Saved:
        access = await self._access(flow, user_id)
        refused: ConnectionProblem | None = None
        try:
            flow = await self.attach(flow, access, user_id, slot, record.id)
        except ConnectionProblem as exc:
            refused = exc
        if in_panel:
            panel = await self._panel(flow, user_id, access)
            return Saved(record, updated, slot, flow, refused, panel=panel)
        listing = await self.my_connections(flow.team_id, user_id)
        return Saved(record, updated, slot, flow, refused, listing=listing)

    # ----------------------------------------------------------------- flow slots

    async def _panel(self, flow: FlowRecord, user_id: str, access: Access) -> SlotsPanel:
        may_attach = allowed(Action.ATTACH_CONNECTION, flow, access)
        mine = await self.mine(flow.team_id, user_id) if may_attach else []
        return SlotsPanel(flow, user_id, may_attach, await self.slots(flow), mine)

    async def slots_panel(self, team_id: str, user_id: str, flow_ref: str) -> SlotsPanel:
        """A flow's slots, for its owners and for run-only users who may provide their own."""
        flow = await self._flow(team_id, flow_ref)
        access = await self._access(flow, user_id)
        if not (
            allowed(Action.ATTACH_CONNECTION, flow, access)
            or allowed(Action.PROVIDE_OWN_CONNECTION, flow, access)
        ):
            raise ConnectionsNotAllowed("view", flow.name, user_id)
        return await self._panel(flow, user_id, access)

    async def change_slot(
        self, team_id: str, user_id: str, flow_id: str, change: SlotChange
    ) -> SlotChanged | None:
        """Apply a click of the Connections modal; a refusal comes back with the panel
        (shown as its notice). None when the flow is gone."""
        flow = await self.flows.get(team_id, flow_id)
        if flow is None:
            return None
        access = await self._access(flow, user_id)
        refused: ConnectionProblem | None = None
        try:
            flow = await self._apply(flow, access, user_id, change)
        except ConnectionProblem as exc:
            refused = exc
        return SlotChanged(change, await self._panel(flow, user_id, access), refused)

    async def _apply(
        self, flow: FlowRecord, access: Access, user_id: str, change: SlotChange
    ) -> FlowRecord:
        if change.what == "attach":
            return await self.attach(flow, access, user_id, change.slot, change.connection_id)
        if change.what == "detach":
            return await self.detach(flow, access, user_id, change.slot)
        return await self.set_runner_provides(
            flow, access, user_id, change.slot, change.runner_provides
        )

    async def connect_by_name(
        self, team_id: str, user_id: str, flow_ref: str, slot: str, connection_name: str
    ) -> Attached:
        """`/flow connect <flow> <slot> <connection name>`."""
        flow, access = await self._attachable(team_id, user_id, flow_ref)
        self._require_slot(flow, slot)
        record = await self.own_by_name(team_id, user_id, connection_name)
        flow = await self.attach(flow, access, user_id, slot, record.id)
        return Attached(flow, slot, record)

    async def target_for_new(
        self, team_id: str, user_id: str, flow_ref: str, slot: str
    ) -> SlotTarget:
        """`/flow connect <flow> <slot>`: where the new connection goes, if they may."""
        flow, _access = await self._attachable(team_id, user_id, flow_ref)
        return self._target(flow, slot, self._require_slot(flow, slot))

    async def target_in_panel(self, team_id: str, flow_id: str, slot: str) -> SlotTarget | None:
        """ "New connection" in a flow's Connections modal (attaching checks access)."""
        flow = await self.flows.get(team_id, flow_id)
        spec = slot_spec(flow, slot) if flow else None
        if flow is None or spec is None:
            return None
        return self._target(flow, slot, spec)

    @staticmethod
    def _target(flow: FlowRecord, slot: str, spec: object) -> SlotTarget:
        kind = getattr(spec, "kind", None)
        return SlotTarget(flow, slot, kind if kind in KINDS else DEFAULT_KIND)

    # ----------------------------------------------------------------- a run's connections

    async def runner_slots(self, flow: FlowRecord, user_id: str) -> list[RunnerSlot]:
        """The slots this person provides when they start a run, with their fitting
        connections (empty when they provide none)."""
        access = await self._access(flow, user_id)
        wanted: list[RunnerSlot] = []
        for slot in slots_runner_provides(flow, access):
            spec = slot_spec(flow, slot)
            options = await self.runner_options(flow, user_id, slot)
            wanted.append(RunnerSlot(slot, spec.kind, spec.description or "", options))
        return wanted

    async def runner_choices(
        self, flow: FlowRecord, user_id: str, choices: Mapping[str, str | None]
    ) -> dict[str, str]:
        """The run modal's choices, checked (`check_runner_choices`)."""
        access = await self._access(flow, user_id)
        return await self.check_runner_choices(flow, access, user_id, choices)


__all__: Sequence[str] = (
    "Attached",
    "ConnectionService",
    "DeleteAsked",
    "OwnConnection",
    "RunnerSlot",
    "Saved",
    "SlotChange",
    "SlotChanged",
    "SlotTarget",
    "SlotsPanel",
)
