"""Connections: named credentials that flows use and nobody can read (SPEC §6).

A connection belongs to the user who created it. Its secret fields are encrypted together
into one Fernet token (`flows.secrets`); the record keeps that ciphertext, which key made
it, and a masked hint — nothing else about the secret. The service hands decrypted values
to exactly one place, `ConnectionService.http_request`, which turns them into request
headers and scrubs them from anything it returns or raises.

Flow slots (`FlowRecord.bindings`): a flow declares connection slots; the owner of a
connection may attach it to a slot of a flow on which they may attach connections
(`Action.ATTACH_CONNECTION`), and the slot records who added it. Steps then act as that
person's connection, whoever edits or runs the flow — co-owners use it in this flow only
and can never see it, list it among their own, or attach it elsewhere. Per slot, owners
choose for run-only users: use the owner's connection, or have the runner provide their
own (then the run modal asks the runner for one of theirs, and the run records which).
"""

from __future__ import annotations

import base64
import json
import logging
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal, Protocol

from pydantic import BaseModel

from flows.definition import HttpRequestStep
from flows.http_policy import (
    DEFAULT_TIMEOUT,
    MAX_RESPONSE_BYTES,
    MAX_TIMEOUT,
    HttpClient,
    HttpFailed,
    HttpRefused,
    HttpRequest,
    join_url,
    origin_of,
    validate_base_url,
)
from flows.permissions import Access, Action, allowed, resolve_access
from flows.ports import Clock, Directory, IdGenerator
from flows.records import FlowRecord, SlotBinding
from flows.runner import Done, Outcome, StepContext, StepFailed
from flows.secrets import SecretBox, SecretUnavailable, mask
from flows.triggers import DEPTH_HEADER

log = logging.getLogger(__name__)

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
_HEADER_NAME = re.compile(r"^[A-Za-z0-9!#$%&'*+.^_`|~-]{1,100}$")
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
# The replacement for a secret found in a response or an error.
REDACTED = "••••"
# Values shorter than this are not scrubbed from responses (they would match everywhere).
MIN_SCRUB_LENGTH = 4


class ConnectionProblem(Exception):
    """A connection operation was refused or failed. The message is safe to show: it never
    contains a secret. `field` names the form field at fault (name, base_url, header_name,
    or a secret field), if any."""

    def __init__(self, message: str, field: str | None = None) -> None:
        super().__init__(message)
        self.field = field


class ConnectionNotFound(ConnectionProblem):
    pass


class DuplicateConnectionName(ConnectionProblem):
    pass


class HttpStepFailed(Exception):
    """An http_request step failed; the message is safe to show and to store in the run.
    `status` is the HTTP status for a non-2xx answer, None when there was no answer."""

    def __init__(self, message: str, status: int | None = None) -> None:
        super().__init__(message)
        self.status = status


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

    async def set_bindings(
        self, team_id: str, flow_id: str, bindings: list[SlotBinding], expected: list[SlotBinding]
    ) -> FlowRecord | None:
        """Compare-and-swap: None if the bindings are no longer `expected` (or no flow)."""

    async def flows_using_connection(
        self, team_id: str, connection_id: str
    ) -> list[FlowRecord]: ...


# --------------------------------------------------------------------------- views


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


def _slot_specs(flow: FlowRecord) -> list[Any]:
    """The declared slots; without a `connections:` section, the slots the http_request
    steps name, taking any kind of HTTP connection."""
    declared = list(flow.definition.connections)
    if declared:
        return declared
    return [_ImpliedSlot(name) for name in flow.definition.slot_names()]


def slot_spec(flow: FlowRecord, slot: str) -> Any:
    for spec in _slot_specs(flow):
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
    for spec in _slot_specs(flow):
        binding = binding_for(flow, spec.slot)
        if not binding.runner_provides:
            continue
        if access.is_owner and binding.connection_id:
            continue
        if access.is_owner or allowed(Action.PROVIDE_OWN_CONNECTION, flow, access):
            wanted.append(spec.slot)
    return wanted


# --------------------------------------------------------------------------- helpers


def _clean_secrets(kind: str, values: Mapping[str, str | None]) -> dict[str, str]:
    fields = SECRET_FIELDS[kind]
    cleaned: dict[str, str] = {}
    for name in fields:
        value = values.get(name)
        value = value.strip() if isinstance(value, str) else ""
        if not value and name not in OPTIONAL_SECRET_FIELDS:
            raise ConnectionProblem(f"{FIELD_LABELS[name]} is required.", name)
        if len(value) > SECRET_MAX:
            raise ConnectionProblem(f"{FIELD_LABELS[name]} is too long.", name)
        if any(ch in value for ch in "\r\n\x00"):
            raise ConnectionProblem(f"{FIELD_LABELS[name]} may not contain line breaks.", name)
        cleaned[name] = value
    if kind == "http_basic" and ":" in cleaned["username"]:
        raise ConnectionProblem("The user name may not contain ':'.", "username")
    return cleaned


def _clean_name(name: str) -> str:
    name = " ".join(name.split())
    if not name:
        raise ConnectionProblem("A connection needs a name.", "name")
    if len(name) > NAME_MAX:
        raise ConnectionProblem(f"A connection name has at most {NAME_MAX} characters.", "name")
    return name


def _clean_header_name(kind: str, header_name: str | None) -> str | None:
    if kind != "http_header":
        return None
    header_name = (header_name or "").strip()
    if not _HEADER_NAME.match(header_name):
        raise ConnectionProblem(
            "The header name must be a single word such as X-API-Key.", "header_name"
        )
    if header_name.lower() in RESERVED_HEADERS:
        raise ConnectionProblem(
            f"The header {header_name} cannot carry a credential.", "header_name"
        )
    return header_name


def _base_url(url: str) -> str:
    try:
        return validate_base_url(url)
    except HttpRefused as exc:
        raise ConnectionProblem(f"Base URL: {exc}.", "base_url") from None


def _hint(kind: str, values: Mapping[str, str]) -> str:
    return mask(values.get(HINT_FIELD[kind], ""))


def _auth_headers(record: ConnectionRecord, values: Mapping[str, str]) -> dict[str, str]:
    if record.kind == "http_bearer":
        return {"Authorization": f"Bearer {values['token']}"}
    if record.kind == "http_header":
        assert record.header_name is not None
        return {record.header_name: values["value"]}
    pair = f"{values['username']}:{values.get('password', '')}".encode()
    return {"Authorization": "Basic " + base64.b64encode(pair).decode("ascii")}


def _scrub_list(values: Mapping[str, str], headers: Mapping[str, str]) -> list[str]:
    candidates = {v for v in values.values() if len(v) >= MIN_SCRUB_LENGTH}
    for value in headers.values():
        candidates.add(value)
        if " " in value:
            candidates.add(value.split(" ", 1)[1])
    # Longest first: "Bearer abc" before "abc".
    return sorted((c for c in candidates if len(c) >= MIN_SCRUB_LENGTH), key=len, reverse=True)


def scrub(value: Any, secrets: Sequence[str]) -> Any:
    """Replace every occurrence of a secret in strings nested in lists and dicts."""
    if not secrets:
        return value
    if isinstance(value, str):
        for secret in secrets:
            if secret in value:
                value = value.replace(secret, REDACTED)
        return value
    if isinstance(value, list):
        return [scrub(item, secrets) for item in value]
    if isinstance(value, dict):
        return {scrub(str(k), secrets): scrub(v, secrets) for k, v in value.items()}
    return value


def _query_pairs(query: Mapping[str, Any] | None) -> tuple[tuple[str, str], ...]:
    pairs: list[tuple[str, str]] = []
    for key, value in (query or {}).items():
        items = value if isinstance(value, list | tuple) else [value]
        for item in items:
            if item is None:
                continue
            text = ("true" if item else "false") if isinstance(item, bool) else str(item)
            pairs.append((str(key), text))
    return tuple(pairs)


# --------------------------------------------------------------------------- service


class ConnectionService:
    def __init__(
        self,
        store: ConnectionStore,
        flows: FlowBindingStore,
        box: SecretBox,
        clock: Clock,
        ids: IdGenerator,
        http: HttpClient | None = None,
        max_response_bytes: int = MAX_RESPONSE_BYTES,
    ) -> None:
        self.store = store
        self.flows = flows
        self.box = box
        self.clock = clock
        self.ids = ids
        self.http = http
        self.max_response_bytes = max_response_bytes

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
            raise ConnectionProblem(f"Unknown connection type {kind!r}.")
        name = _clean_name(name)
        values = _clean_secrets(kind, secrets)
        now = self.clock.now()
        record = ConnectionRecord(
            id=self.ids.new_id("K"),
            team_id=team_id,
            owner=owner,
            name=name,
            kind=kind,  # type: ignore[arg-type]
            base_url=_base_url(base_url),
            header_name=_clean_header_name(kind, header_name),
            ciphertext=self.box.encrypt(values),
            key_id=self.box.current_key_id,
            hint=_hint(kind, values),
            created_at=now,
            updated_at=now,
        )
        if await self.store.find_by_name(team_id, owner, name) is not None:
            raise DuplicateConnectionName(f"You already have a connection named “{name}”.", "name")
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
            raise ConnectionNotFound("That connection does not exist or is not yours.")
        return record

    async def own_by_name(self, team_id: str, owner: str, name: str) -> ConnectionRecord:
        record = await self.store.find_by_name(team_id, owner, " ".join(name.split()))
        if record is None:
            raise ConnectionNotFound(
                f"You have no connection named “{name}”. Create one with `/flow connect`."
            )
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
        values = _clean_secrets(record.kind, secrets)
        changes: dict[str, Any] = {
            "ciphertext": self.box.encrypt(values),
            "key_id": self.box.current_key_id,
            "hint": _hint(record.kind, values),
            "updated_at": self.clock.now(),
        }
        if base_url is not None:
            changes["base_url"] = _base_url(base_url)
        if header_name is not None:
            changes["header_name"] = _clean_header_name(record.kind, header_name)
        if name is not None and _clean_name(name) != record.name:
            clean = _clean_name(name)
            other = await self.store.find_by_name(team_id, actor, clean)
            if other is not None and other.id != record.id:
                raise DuplicateConnectionName(
                    f"You already have a connection named “{clean}”.", "name"
                )
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
        for spec in _slot_specs(flow):
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
            names = ", ".join(f"`{s.slot}`" for s in _slot_specs(flow)) or "none"
            raise ConnectionProblem(
                f"“{flow.name}” has no connection slot `{slot}` (its slots: {names})."
            )
        return spec

    async def _change_bindings(
        self,
        flow: FlowRecord,
        change: Callable[[FlowRecord], list[SlotBinding]],
    ) -> FlowRecord:
        """Apply `change` to the flow's bindings, re-reading and retrying when someone else
        changed them meanwhile (compare-and-swap)."""
        for _attempt in range(8):
            saved = await self.flows.set_bindings(
                flow.team_id, flow.id, change(flow), list(flow.bindings)
            )
            if saved is not None:
                return saved
            latest = await self.flows.get(flow.team_id, flow.id)
            if latest is None:
                raise ConnectionProblem(f"“{flow.name}” no longer exists.")
            flow = latest
        raise ConnectionProblem("The flow's connections changed meanwhile; try again.")

    async def _save_binding(self, flow: FlowRecord, binding: SlotBinding) -> FlowRecord:
        def change(current: FlowRecord) -> list[SlotBinding]:
            kept = binding_for(current, binding.slot)
            updated = kept.model_copy(
                update={k: getattr(binding, k) for k in binding.model_fields_set}
            )
            bindings = [b for b in current.bindings if b.slot != binding.slot] + [updated]
            order = {s.slot: i for i, s in enumerate(_slot_specs(current))}
            return sorted(bindings, key=lambda b: order.get(b.slot, len(order)))

        return await self._change_bindings(flow, change)

    async def attach(
        self, flow: FlowRecord, access: Access, actor: str, slot: str, connection_id: str
    ) -> FlowRecord:
        """Fill a slot with one of the actor's own connections; the slot records the actor."""
        if not allowed(Action.ATTACH_CONNECTION, flow, access):
            raise ConnectionProblem(f"Only owners of “{flow.name}” can attach connections to it.")
        spec = self._require_slot(flow, slot)
        record = await self.own(flow.team_id, actor, connection_id)
        if not slot_accepts(getattr(spec, "kind", None), record.kind):
            raise ConnectionProblem(
                f"Slot `{slot}` needs a {kind_label(spec.kind)} connection; "
                f"“{record.name}” is a {record.label}."
            )
        saved = await self._save_binding(
            flow, SlotBinding(slot=slot, connection_id=record.id, added_by=actor)
        )
        log.info("flow %s slot %s: connection %s attached by %s", flow.id, slot, record.id, actor)
        return saved

    async def detach(self, flow: FlowRecord, access: Access, actor: str, slot: str) -> FlowRecord:
        if not allowed(Action.ATTACH_CONNECTION, flow, access):
            raise ConnectionProblem(f"Only owners of “{flow.name}” can change its connections.")
        self._require_slot(flow, slot)
        return await self._save_binding(
            flow, SlotBinding(slot=slot, connection_id=None, added_by=None)
        )

    async def set_runner_provides(
        self, flow: FlowRecord, access: Access, actor: str, slot: str, runner_provides: bool
    ) -> FlowRecord:
        """Owners choose per slot: run-only users use the owner's connection, or their own."""
        if not allowed(Action.ATTACH_CONNECTION, flow, access):
            raise ConnectionProblem(f"Only owners of “{flow.name}” can change its connections.")
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
        raises ConnectionProblem naming the first slot that is not."""
        chosen: dict[str, str] = {}
        for slot in slots_runner_provides(flow, access):
            connection_id = choices.get(slot)
            if not connection_id:
                raise ConnectionProblem(
                    f"Choose one of your connections for `{slot}` "
                    "(or create one with `/flow connect`).",
                    slot,
                )
            record = await self.store.get(flow.team_id, connection_id)
            spec = slot_spec(flow, slot)
            if record is None or record.owner != user:
                raise ConnectionProblem(f"The connection chosen for `{slot}` is not yours.", slot)
            if not slot_accepts(getattr(spec, "kind", None), record.kind):
                raise ConnectionProblem(
                    f"The connection chosen for `{slot}` has the wrong type.", slot
                )
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
        chosen = (runner_choices or {}).get(slot)
        use_runner = binding.runner_provides and (not runner_is_owner or not binding.connection_id)
        if use_runner and started_by:
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
        """Send one request through a connection; returns {status, body, headers}.

        `path` is already rendered; it is joined to the connection's base URL and may not
        change its scheme, host or port. A non-2xx status raises HttpStepFailed with the
        status; nothing returned or raised contains the connection's secret."""
        if self.http is None:
            raise HttpStepFailed("outbound HTTP is not configured")
        method = (method or "GET").upper()
        if method not in METHODS:
            raise HttpStepFailed(f"unsupported HTTP method {method}")
        try:
            values = self.box.decrypt(record.ciphertext)
        except SecretUnavailable as exc:
            raise HttpStepFailed(f"connection “{record.name}”: {exc}") from None
        auth = _auth_headers(record, values)
        secrets = _scrub_list(values, auth)
        try:
            return await self._send(
                record, auth, secrets, method, path, headers, query, json_body, send_json, timeout
            )
        except HttpStepFailed as exc:
            raise HttpStepFailed(str(scrub(str(exc), secrets)), exc.status) from None
        except Exception as exc:
            # Whatever went wrong, its text and traceback stay here: they may hold a secret.
            raise HttpStepFailed(f"the request failed ({type(exc).__name__})") from None

    async def _send(
        self,
        record: ConnectionRecord,
        auth: Mapping[str, str],
        secrets: Sequence[str],
        method: str,
        path: str,
        headers: Mapping[str, Any] | None,
        query: Mapping[str, Any] | None,
        json_body: Any,
        send_json: bool,
        timeout: float | None,
    ) -> dict[str, Any]:
        assert self.http is not None
        try:
            url = join_url(record.base_url, str(path or ""))
        except HttpRefused as exc:
            raise HttpStepFailed(str(exc)) from None
        request_headers: dict[str, str] = {}
        for name, value in (headers or {}).items():
            name = str(name).strip()
            if not _HEADER_NAME.match(name) or name.lower() in RESERVED_HEADERS:
                raise HttpStepFailed(f"the header {name!r} cannot be set by a step")
            text = "" if value is None else str(value)
            if any(ch in text for ch in "\r\n\x00"):
                raise HttpStepFailed(f"the header {name} contains a line break")
            request_headers[name] = text
        body: bytes | None = None
        if send_json:
            body = json.dumps(json_body, default=str).encode("utf-8")
            if not any(k.lower() == "content-type" for k in request_headers):
                request_headers["Content-Type"] = "application/json"
        request_headers.setdefault("Accept", "application/json, */*;q=0.5")
        # The connection's credential wins over any header of the same name.
        auth_names = {k.lower() for k in auth}
        request_headers = {k: v for k, v in request_headers.items() if k.lower() not in auth_names}
        request_headers.update(auth)
        wait = DEFAULT_TIMEOUT if timeout is None else max(0.1, min(float(timeout), MAX_TIMEOUT))
        request = HttpRequest(
            method=method,
            url=url,
            headers=tuple(request_headers.items()),
            query=_query_pairs(query),
            body=body,
            timeout=wait,
            max_response_bytes=self.max_response_bytes,
        )
        host = origin_of(url).host
        try:
            response = await self.http.send(request)
        except (HttpRefused, HttpFailed) as exc:
            raise HttpStepFailed(str(exc)) from None
        text = response.body.decode("utf-8", errors="replace")
        parsed: Any
        try:
            parsed = json.loads(text) if text.strip() else text
        except ValueError:
            parsed = text
        output = {
            "status": response.status,
            "body": scrub(parsed, secrets),
            "headers": scrub(dict(response.headers), secrets),
        }
        log.info(
            "http_request %s %s via connection %s: %d", method, host, record.id, response.status
        )
        if not 200 <= response.status < 300:
            raise HttpStepFailed(
                f"{method} {host} answered HTTP {response.status}", status=response.status
            )
        return output

    # ----------------------------------------------------------------- keys

    async def reencrypt_stale(self) -> int:
        """Re-encrypt, with the newest key, every connection made with an older key."""
        count = 0
        for record in await self.store.stale_keys(self.box.current_key_id):
            try:
                ciphertext = self.box.rotate(record.ciphertext)
            except SecretUnavailable:
                log.error(
                    "connection %s cannot be decrypted with the configured keys; "
                    "it stays as it is until its owner updates its credentials",
                    record.id,
                )
                continue
            if await self.store.set_ciphertext(
                record.id, record.key_id, ciphertext, self.box.current_key_id
            ):
                count += 1
        if count:
            log.info("re-encrypted %d connection(s) with the newest key", count)
        return count


class KeyRotation:
    """A bot.app Service: at start, re-encrypt connections made with an older key."""

    def __init__(self, service: ConnectionService) -> None:
        self.service = service

    async def start(self) -> None:
        await self.service.reencrypt_stale()

    async def stop(self) -> None:
        return None


# --------------------------------------------------------------------------- the step


class HttpRequestExecutor:
    """The `http_request` step (registered in the runner's ExecutorRegistry by bot.app).

    Renders path, headers, query and json (templates), picks the slot's connection for this
    run (`ConnectionService.connection_for_step`: the runner's own for a slot "provided by
    the run-only user" on a run they started, else the one attached to the slot) and sends
    the request through it, with `X-Flowbot-Depth: <run depth>` so that a chain of flows
    through webhooks stops at the maximum depth. Outputs `status`, `body` (JSON when it
    parses, else text) and `headers`; a non-2xx status fails the step with the status."""

    def __init__(self, service: ConnectionService, directory: Directory) -> None:
        self.service = service
        self.directory = directory

    async def execute(self, step: HttpRequestStep, ctx: StepContext) -> Outcome:
        run = ctx.run
        flow = await self.service.flows.get(run.team_id, run.flow_id)
        if flow is None:
            raise StepFailed("the flow no longer exists")
        # Only a person who started the run by hand can have provided a connection; a
        # schedule or an event runs with the connections attached to the slots.
        starter = run.started_by if run.trigger.type == "manual" else None
        starter_is_owner = True
        if starter:
            access = await resolve_access(flow, starter, self.directory)
            starter_is_owner = access.is_owner
        choices = run.trigger.data.get(RUN_CHOICES_KEY) or {}
        path = ctx.render("path", step.path)
        headers = {
            name: ctx.render(f"headers.{name}", value)
            for name, value in step.headers.items()
            if name.strip().lower() != DEPTH_HEADER.lower()
        }
        # A call into a Flowbot webhook (this one or another) continues the chain's depth;
        # a step cannot set it lower.
        headers[DEPTH_HEADER] = str(run.depth)
        query = {name: ctx.value(f"query.{name}", value) for name, value in step.query.items()}
        send_json = step.json_ is not None
        body = ctx.value("json", step.json_) if send_json else None
        try:
            record = await self.service.connection_for_step(
                flow,
                step.connection,
                starter,
                {str(k): str(v) for k, v in choices.items()} if isinstance(choices, dict) else {},
                starter_is_owner,
            )
            output = await self.service.http_request(
                record,
                method=step.method,
                path=path,
                headers=headers,
                query=query,
                json_body=body,
                send_json=send_json,
                timeout=step.timeout,
            )
        except HttpStepFailed as exc:
            raise StepFailed(str(exc)) from None
        return Done(output)

    async def resume(
        self, step: HttpRequestStep, ctx: StepContext, payload: Mapping[str, Any]
    ) -> Outcome:
        raise StepFailed("an http_request step does not wait, so it cannot be resumed")
