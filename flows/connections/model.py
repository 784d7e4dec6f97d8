"""What a connection is: its kinds, its stored record, the stores it needs, and the slots
of a flow it can fill (SPEC §6)."""

from __future__ import annotations

import re
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from flows.http_policy import origin_of
from flows.permissions import Access, Action, allowed
from flows.records import FlowRecord, SlotBinding

# The kinds of `flows.definition.ConnectionSlotSpec.kind`.
ConnectionKind = Literal["http_bearer", "http_header", "http_basic"]
KINDS: tuple[ConnectionKind, ...] = ("http_bearer", "http_header", "http_basic")
DEFAULT_KIND: ConnectionKind = "http_bearer"
KIND_LABELS: dict[str, str] = {
    "http_bearer": "HTTP bearer token",
    "http_header": "HTTP header key",
    "http_basic": "Basic auth (user + password)",
}
# The secret fields of each kind (all encrypted; none is ever shown).
SECRET_FIELDS: dict[str, tuple[str, ...]] = {
    "http_bearer": ("token",),
    "http_header": ("value",),
    "http_basic": ("username", "password"),
}
# Basic auth: some APIs take the key as the user name and no password.
OPTIONAL_SECRET_FIELDS = frozenset({"password"})
# Kinds that name the header carrying the secret.
HEADER_NAME_KINDS = frozenset({"http_header"})
FIELD_LABELS: dict[str, str] = {
    "token": "Token",
    "value": "Header value",
    "username": "User name",
    "password": "Password",
}
# The field whose masked tail is the connection's hint.
HINT_FIELD: dict[str, str] = {
    "http_bearer": "token",
    "http_header": "value",
    "http_basic": "password",
}

# Where a run records the connections its starter chose: RunTrigger.data[RUN_CHOICES_KEY]
# = {slot: connection id} (ids only; a run record never holds a credential).
RUN_CHOICES_KEY = "connections"

NAME_MAX = 80
SECRET_MAX = 4000
METHODS = frozenset({"GET", "POST", "PUT", "PATCH", "DELETE", "HEAD", "OPTIONS"})
HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
# Headers a step or a header-key connection may not set: the transport owns them.
RESERVED_HEADERS = frozenset(
    {
        "host",
        "content-length",
        "transfer-encoding",
        "connection",
        "upgrade",
        "te",
        "trailer",
        "keep-alive",
        "proxy-authorization",
        "proxy-connection",
        "cookie",
    }
)


def kind_label(kind: str) -> str:
    return KIND_LABELS.get(kind, kind)


def slot_accepts(slot_kind: str | None, connection_kind: str) -> bool:
    """A slot of a declared kind takes that kind only; a slot the flow does not declare
    (implied by its http_request steps; kind None) takes any HTTP connection."""
    if slot_kind in KINDS:
        return slot_kind == connection_kind
    return connection_kind in KINDS


# --------------------------------------------------------------------------- records


class ConnectionRecord(BaseModel):
    """A stored connection: ciphertext and a masked hint, never the secret itself."""

    id: str
    team_id: str
    owner: str
    name: str
    kind: ConnectionKind
    base_url: str
    # For `header` connections: the header's name (not a secret, e.g. X-API-Key).
    header_name: str | None = None
    ciphertext: str
    # Fingerprint of the key that made the ciphertext (re-encryption finds old ones).
    key_id: str
    hint: str
    created_at: datetime
    updated_at: datetime

    @property
    def label(self) -> str:
        return kind_label(self.kind)

    @property
    def host(self) -> str:
        return origin_of(self.base_url).host


class ConnectionStore(Protocol):
    async def insert(self, record: ConnectionRecord) -> None:
        """Raises DuplicateConnectionName when the owner already has one by that name."""

    async def get(self, team_id: str, connection_id: str) -> ConnectionRecord | None: ...

    async def get_many(self, team_id: str, ids: Sequence[str]) -> list[ConnectionRecord]: ...

    async def list_by_owner(self, team_id: str, owner: str) -> list[ConnectionRecord]: ...

    async def find_by_name(self, team_id: str, owner: str, name: str) -> ConnectionRecord | None:
        """Case-insensitive."""

    async def replace(self, record: ConnectionRecord) -> None: ...

    async def delete(self, team_id: str, connection_id: str) -> bool: ...

    async def stale_keys(self, current_key_id: str) -> list[ConnectionRecord]:
        """Connections (any workspace) encrypted with another key than the current one."""

    async def set_ciphertext(
        self, connection_id: str, old_key_id: str, ciphertext: str, key_id: str
    ) -> bool:
        """Swap the ciphertext if the record still has `old_key_id` (a racing update wins)."""


class FlowBindingStore(Protocol):
    """What connections need of the flow store (implemented by `storage.flows_repo`)."""

    async def get(self, team_id: str, flow_id: str) -> FlowRecord | None: ...

    async def get_by_name(self, team_id: str, name: str) -> FlowRecord | None: ...

    async def set_bindings(
        self, team_id: str, flow_id: str, bindings: list[SlotBinding], expected: list[SlotBinding]
    ) -> FlowRecord | None:
        """Compare-and-swap: None if the bindings are no longer `expected` (or no flow)."""

    async def flows_using_connection(
        self, team_id: str, connection_id: str
    ) -> list[FlowRecord]: ...

    async def flows_using_connections(
        self, team_id: str, connection_ids: Sequence[str]
    ) -> list[FlowRecord]:
        """Flows with a slot filled by any of these connections (one query)."""


# --------------------------------------------------------------------------- slots


@dataclass(frozen=True)
class SlotState:
    """One slot of a flow as a user may see it: never a secret, and a hint only to the
    connection's owner."""

    slot: str
    kind: str | None
    description: str
    binding: SlotBinding
    connection: ConnectionRecord | None

    @property
    def runner_provides(self) -> bool:
        return self.binding.runner_provides

    @property
    def connection_id(self) -> str | None:
        return self.binding.connection_id if self.connection is not None else None


@dataclass(frozen=True)
class _ImpliedSlot:
    slot: str
    kind: str | None = None
    description: str | None = None


def slot_specs(flow: FlowRecord) -> list[Any]:
    """The declared slots; without a `connections:` section, the slots the http_request
    steps name, taking any kind of HTTP connection."""
    declared = list(flow.definition.connections)
    if declared:
        return declared
    return [_ImpliedSlot(name) for name in flow.definition.slot_names()]


def slot_spec(flow: FlowRecord, slot: str) -> Any:
    for spec in slot_specs(flow):
        if spec.slot == slot:
            return spec
    return None


def binding_for(flow: FlowRecord, slot: str) -> SlotBinding:
    for binding in flow.bindings:
        if binding.slot == slot:
            return binding
    return SlotBinding(slot=slot)


def slots_runner_provides(flow: FlowRecord, access: Access) -> list[str]:
    """Slots the person starting a run must fill with their own connection: slots set to
    "provided by the run-only user" when they run it as a run-only user, and such slots
    with no owner connection attached when an owner runs it."""
    wanted: list[str] = []
    for spec in slot_specs(flow):
        binding = binding_for(flow, spec.slot)
        if not binding.runner_provides:
            continue
        if access.is_owner and binding.connection_id:
            continue
        if access.is_owner or allowed(Action.PROVIDE_OWN_CONNECTION, flow, access):
            wanted.append(spec.slot)
    return wanted
