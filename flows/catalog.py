"""The flow catalog: creating, finding, editing, enabling and deleting flows.

Handlers call one `FlowCatalog` use case each; it asks `flows.permissions` before every
read or change for a person, raises refusals as data (worded by `cards.flows`) and keeps
definitions versioned through a `FlowStore` (implemented in `storage.flows_repo`).
"""

from __future__ import annotations

import hashlib
import logging
import secrets
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Protocol

from flows.call_checks import check_calls
from flows.definition import FlowDefinition, ScheduleTrigger, WebhookTrigger
from flows.errors import FlowbotError, NotAllowed
from flows.errors import FlowNotFound as FlowNotFound  # re-exported: importers catch it here
from flows.permissions import Access, Action, allowed, resolve_access
from flows.ports import Clock, Directory, IdGenerator
from flows.records import FlowRecord, SlotBinding
from flows.schedule_policies import next_firing_times

log = logging.getLogger(__name__)

FLOW_ID_PREFIX = "F"

# Listeners follow every change (the scheduler re-reads a flow's trigger, …).
ChangeListener = Callable[[str, str], Awaitable[None]]
# Called after a delete with (team_id, flow_id, deleted_by).
DeleteListener = Callable[[str, str, str], Awaitable[None]]


# Catalog refusals are data: `flows.errors.FlowNotFound` and `NotAllowed`, and the
# `FlowbotError`s below; `cards.flows.describe_flows_error` words them.


class CreationRefused(FlowbotError):
    """The workspace's creation policy does not list this person (issue 5: sharing).
    `policy_set_by` is the admin who last set the policy, if known: whom to ask."""

    def __init__(self, user_id: str, policy_set_by: str | None = None) -> None:
        super().__init__(f"{user_id} may not create flows in this workspace.")
        self.user_id = user_id
        self.policy_set_by = policy_set_by


class CreationPolicy(Protocol):
    async def creation_refusal(self, team_id: str, user_id: str) -> CreationRefused | None:
        """None if the user may create flows, else the refusal to raise."""


class NameTaken(FlowbotError):
    """Another flow of the workspace has this name (names ignore case)."""

    def __init__(self, name: str) -> None:
        super().__init__(f"A flow named {name!r} already exists in this workspace.")
        self.name = name


class VersionConflict(FlowbotError):
    """Someone saved the flow after the version the editor started from."""

    def __init__(self, flow_name: str, expected: int, current: int, saved_by: str) -> None:
        super().__init__(
            f"{saved_by} saved version {current} of {flow_name!r} while version {expected} "
            "was being edited."
        )
        self.flow_name = flow_name
        self.expected = expected
        self.current = current
        self.saved_by = saved_by


class NotAWebhookFlow(FlowbotError):
    """`/flow webhook` on a flow that another trigger starts."""

    def __init__(self, flow_name: str, trigger_type: str) -> None:
        super().__init__(f"Flow {flow_name!r} is not started by a webhook ({trigger_type}).")
        self.flow_name = flow_name
        self.trigger_type = trigger_type


@dataclass(frozen=True)
class FlowVersion:
    """One saved definition of a flow."""

    flow_id: str
    version: int
    definition: FlowDefinition
    saved_at: datetime
    saved_by: str


@dataclass(frozen=True)
class ListedFlow:
    flow: FlowRecord
    access: Access


@dataclass(frozen=True)
class SaveResult:
    flow: FlowRecord
    # The webhook token, only right after it was made (the store keeps its sha256).
    webhook_token: str | None = None
    created: bool = False


class FlowStore(Protocol):
    """Persistence of flows and their earlier versions (one workspace per team_id)."""

    async def insert(self, flow: FlowRecord) -> None:
        """Raises NameTaken when the team has a flow of this name (ignoring case)."""

    async def get(self, team_id: str, flow_id: str) -> FlowRecord | None: ...

    async def get_by_name(self, team_id: str, name: str) -> FlowRecord | None: ...

    async def list_candidates(self, team_id: str, user_id: str) -> list[FlowRecord]:
        """Flows the user created or that are shared with them, a group or a channel."""

    async def replace_definition(
        self, current: FlowRecord, definition: FlowDefinition, by: str, at: datetime
    ) -> FlowRecord:
        """Save `definition` as version current.version + 1 if the stored version is still
        current.version (else VersionConflict), keeping the earlier one. NameTaken on a
        rename onto another flow's name."""

    async def set_webhook_hash(self, team_id: str, flow_id: str, token_hash: str) -> None: ...

    async def set_enabled(
        self, team_id: str, flow_id: str, enabled: bool, by: str, at: datetime
    ) -> FlowRecord | None: ...

    async def delete(self, team_id: str, flow_id: str) -> bool: ...

    async def versions(self, team_id: str, flow_id: str) -> list[FlowVersion]:
        """Every saved version, oldest first."""

    # issue 8 (schedules and automated triggers):
    async def list_enabled(self, trigger_type: str, team_id: str | None = None) -> list[FlowRecord]:
        """Enabled flows whose trigger has this type (all workspaces unless `team_id`)."""

    async def get_by_id(self, flow_id: str) -> FlowRecord | None:
        """A flow by id in any workspace (webhooks arrive with the flow id only)."""

    # issue 7 (connections): slots are filled without a new version; see
    # `flows.connections.FlowBindingStore`.
    async def set_bindings(
        self, team_id: str, flow_id: str, bindings: list[SlotBinding], expected: list[SlotBinding]
    ) -> FlowRecord | None:
        """Compare-and-swap of `bindings`; None if they changed meanwhile or the flow is gone."""

    async def flows_using_connection(self, team_id: str, connection_id: str) -> list[FlowRecord]:
        """Flows with a slot filled by this connection."""


class UserStore(Protocol):
    """What the bot remembers about a person beyond their flows."""

    async def has_seen_welcome(self, team_id: str, user_id: str) -> bool: ...

    async def mark_welcome_seen(self, team_id: str, user_id: str, at: datetime) -> None: ...


def hash_webhook_token(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def needs_webhook_token(definition: FlowDefinition) -> bool:
    return isinstance(definition.trigger, WebhookTrigger)


@dataclass(frozen=True)
class FlowDetails:
    """A flow as `/flow show` presents it."""

    flow: FlowRecord
    # The next scheduled run (None: not scheduled, or off).
    next_run: datetime | None


@dataclass(frozen=True)
class FlowListing:
    """The flows a person sees in `/flow list`, by name."""

    owned: list[FlowRecord]
    shared: list[FlowRecord]  # run only


@dataclass(frozen=True)
class WebhookAddress:
    flow: FlowRecord
    # A new token, only right after it was made (the store keeps its sha256).
    token: str | None = None


class FlowCatalog:
    def __init__(
        self,
        store: FlowStore,
        directory: Directory,
        clock: Clock,
        ids: IdGenerator,
        *,
        creation_policy: CreationPolicy | None = None,
        on_change: Sequence[ChangeListener] = (),
        on_delete: Sequence[DeleteListener] = (),
    ) -> None:
        self.store = store
        self.directory = directory
        self.clock = clock
        self.ids = ids
        # Sharing (issue 5): workspace admins may restrict who creates flows.
        self.creation_policy = creation_policy
        self.on_change: list[ChangeListener] = list(on_change)
        self.on_delete: list[DeleteListener] = list(on_delete)

    # ------------------------------------------------------------------ reading

    async def find(self, team_id: str, ref: str) -> FlowRecord:
        """A flow by id or by name (ignoring case); FlowNotFound otherwise."""
        ref = ref.strip()
        if not ref:
            raise FlowNotFound(ref)
        flow = await self.store.get(team_id, ref) or await self.store.get_by_name(team_id, ref)
        if flow is None:
            raise FlowNotFound(ref)
        return flow

    async def authorize(
        self, team_id: str, user_id: str, ref: str, action: Action
    ) -> tuple[FlowRecord, Access]:
        """The flow and the user's access to it, if they may do `action`; else NotAllowed."""
        flow = await self.find(team_id, ref)
        access = await resolve_access(flow, user_id, self.directory)
        if not allowed(action, flow, access):
            raise NotAllowed(action.value, flow.name, user_id)
        return flow, access

    async def list_for(self, team_id: str, user_id: str) -> list[ListedFlow]:
        """Flows the user owns or that are shared with them, by name."""
        listed = []
        for flow in await self.store.list_candidates(team_id, user_id):
            access = await resolve_access(flow, user_id, self.directory)
            if access.is_owner or access.is_runner:
                listed.append(ListedFlow(flow, access))
        return sorted(listed, key=lambda item: item.flow.name.casefold())

    async def listing(self, team_id: str, user_id: str) -> FlowListing:
        listed = await self.list_for(team_id, user_id)
        return FlowListing(
            owned=[item.flow for item in listed if item.access.is_owner],
            shared=[item.flow for item in listed if not item.access.is_owner],
        )

    async def show(self, team_id: str, user_id: str, ref: str) -> FlowDetails:
        flow, _ = await self.authorize(team_id, user_id, ref, Action.VIEW)
        return FlowDetails(flow, self.next_run(flow))

    def next_run(self, flow: FlowRecord) -> datetime | None:
        trigger = flow.definition.trigger
        if isinstance(trigger, ScheduleTrigger) and flow.enabled:
            # The computation `/flow next` shows (the flow's timezone, DST included).
            upcoming = next_firing_times(trigger, self.clock.now(), 1)
            return upcoming[0] if upcoming else None
        return None

    async def versions(self, team_id: str, user_id: str, ref: str) -> list[FlowVersion]:
        flow, _ = await self.authorize(team_id, user_id, ref, Action.EXPORT)
        return await self.store.versions(team_id, flow.id)

    async def export(self, team_id: str, user_id: str, ref: str) -> FlowRecord:
        flow, _ = await self.authorize(team_id, user_id, ref, Action.EXPORT)
        return flow

    async def open_for_editing(self, team_id: str, user_id: str, ref: str) -> FlowRecord:
        """The flow to prefill the editor with, if the user may edit it."""
        flow, _ = await self.authorize(team_id, user_id, ref, Action.EDIT)
        return flow

    async def ask_to_delete(self, team_id: str, user_id: str, ref: str) -> FlowRecord:
        """The flow to ask about, if the user may delete it (the click checks again)."""
        flow, _ = await self.authorize(team_id, user_id, ref, Action.DELETE)
        return flow

    # ------------------------------------------------------------------ changing

    async def create(self, team_id: str, user_id: str, definition: FlowDefinition) -> SaveResult:
        # Sharing (issue 5): the workspace's creation policy comes first.
        if self.creation_policy is not None:
            refusal = await self.creation_policy.creation_refusal(team_id, user_id)
            if refusal is not None:
                raise refusal
        await check_calls(self.find, team_id, definition, None)
        now = self.clock.now()
        token = secrets.token_urlsafe(32) if needs_webhook_token(definition) else None
        flow = FlowRecord(
            id=self.ids.new_id(FLOW_ID_PREFIX),
            team_id=team_id,
            definition=definition,
            version=1,
            creator=user_id,
            enabled=True,
            webhook_token_hash=hash_webhook_token(token) if token else None,
            created_at=now,
            updated_at=now,
            updated_by=user_id,
        )
        await self.store.insert(flow)
        await self._changed(team_id, flow.id)
        return SaveResult(flow, token, created=True)

    async def save(
        self,
        team_id: str,
        user_id: str,
        definition: FlowDefinition,
        flow_id: str | None = None,
        expected_version: int | None = None,
    ) -> SaveResult:
        """What the editor submits: a new flow (no `flow_id`), or a new version of one."""
        if flow_id is None:
            return await self.create(team_id, user_id, definition)
        return await self.update_definition(team_id, user_id, flow_id, definition, expected_version)

    async def update_definition(
        self,
        team_id: str,
        user_id: str,
        ref: str,
        definition: FlowDefinition,
        expected_version: int | None = None,
    ) -> SaveResult:
        """Save a new version. `expected_version` is the version the editor started from
        (None: the current one, for flows-as-code imports)."""
        flow, _ = await self.authorize(team_id, user_id, ref, Action.EDIT)
        if expected_version is not None and expected_version != flow.version:
            raise VersionConflict(flow.name, expected_version, flow.version, flow.updated_by)
        await check_calls(self.find, team_id, definition, flow.id)
        saved = await self.store.replace_definition(flow, definition, user_id, self.clock.now())
        token = None
        # A flow that became a webhook flow gets its token now; an existing one is kept.
        if needs_webhook_token(definition) and saved.webhook_token_hash is None:
            token = secrets.token_urlsafe(32)
            await self.store.set_webhook_hash(team_id, saved.id, hash_webhook_token(token))
            saved = saved.model_copy(update={"webhook_token_hash": hash_webhook_token(token)})
        await self._changed(team_id, saved.id)
        return SaveResult(saved, token)

    async def webhook(
        self, team_id: str, user_id: str, ref: str, regenerate: bool = False
    ) -> WebhookAddress:
        """An owner's look at a webhook flow; with `regenerate`, a new secret token (the
        old one stops working at once)."""
        flow, _ = await self.authorize(team_id, user_id, ref, Action.EDIT)
        if not needs_webhook_token(flow.definition):
            raise NotAWebhookFlow(flow.name, flow.definition.trigger.type)
        if not regenerate:
            return WebhookAddress(flow)
        token = secrets.token_urlsafe(32)
        await self.store.set_webhook_hash(team_id, flow.id, hash_webhook_token(token))
        return WebhookAddress(flow, token)

    async def set_enabled(self, team_id: str, user_id: str, ref: str, enabled: bool) -> FlowRecord:
        flow, _ = await self.authorize(team_id, user_id, ref, Action.EDIT)
        updated = await self.store.set_enabled(team_id, flow.id, enabled, user_id, self.clock.now())
        if updated is None:
            raise FlowNotFound(ref)
        await self._changed(team_id, flow.id)
        return updated

    async def delete(self, team_id: str, user_id: str, ref: str) -> FlowRecord:
        flow, _ = await self.authorize(team_id, user_id, ref, Action.DELETE)
        if not await self.store.delete(team_id, flow.id):
            raise FlowNotFound(ref)
        await self._changed(team_id, flow.id)
        for listener in list(self.on_delete):
            try:
                await listener(team_id, flow.id, user_id)
            except Exception:
                log.exception("a delete listener failed for flow %s", flow.id)
        return flow

    async def _changed(self, team_id: str, flow_id: str) -> None:
        for listener in list(self.on_change):
            try:
                await listener(team_id, flow_id)
            except Exception:
                # A listener's failure must not undo or hide a saved change.
                log.exception("flow change listener failed for %s", flow_id)
