"""The composition root: settings → storage, Slack client, services, Bolt app.

Everything is built here and handed over explicitly: no service is completed by a setter
and no module global is changed at start. `Overrides` replaces any part (tests: a fake
clock, in-memory stores …)."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Protocol

from slack_bolt.async_app import AsyncApp
from slack_sdk.web.async_client import AsyncWebClient

from adapters.approval_notifier import SlackApprovalNotifier
from adapters.ask_notifier import SlackAskNotifier
from adapters.channels import SlackChannelNames
from adapters.run_notifier import SlackRunNotifier, describe_error
from adapters.schedule_notifier import SlackScheduleNotifier
from adapters.sharing_notifier import SlackSharingNotifier
from adapters.slack import ChannelTurns, SlackDirectory, SlackMessenger, make_client
from bot.http_client import AiohttpHttpClient
from bot.keys import load_secret_box
from bot.settings import Settings
from bot.socket_mode import PING_INTERVAL, SocketMode
from cards import runs as run_cards
from cards.home import MY_BUTTONS_BLOCK
from flows.approvals import ApprovalService, ApprovalStepExecutor, ApprovalStore
from flows.ask_model import AskStore
from flows.asks import AskService, AskStepExecutor
from flows.catalog import FlowCatalog, FlowStore, UserStore
from flows.connections import (
    ConnectionService,
    ConnectionStore,
    FlowBindingStore,
    HttpRequestExecutor,
    KeyRotation,
)
from flows.http_policy import AddressPolicy, HttpClient
from flows.ports import Clock, Directory, IdGenerator, Messenger, RandomIds, SystemClock
from flows.run_notices import OffPathNotices
from flows.run_requests import RunRequests
from flows.runner import Runner, RunStore
from flows.scheduling import ScheduledFlowSource, ScheduleService, ScheduleStateStore
from flows.secrets import SecretBox
from flows.sharing import (
    AccessRequestStore,
    AuditStore,
    ButtonStore,
    PolicyStore,
    SharedFlowStore,
    SharingService,
)
from flows.steps import builtin_executors
from flows.triggers import AutomatedFlowSource, TriggerService
from handlers import approvals as approval_listeners
from handlers import asks as ask_listeners
from handlers import commands as command_listeners
from handlers import connections as connection_listeners
from handlers import errors as error_listeners
from handlers import events as event_listeners
from handlers import flow_commands as flow_listeners
from handlers import home as home_listeners
from handlers import run_commands as run_listeners
from handlers import sharing as sharing_listeners
from handlers import webhooks as webhook_listeners
from handlers.commands import SlashRouter, Subcommand
from handlers.deps import HandlerDeps, HomeSection
from storage.approvals_repo import ApprovalsRepo
from storage.asks_repo import AsksRepo
from storage.audit_repo import AuditRepo
from storage.buttons_repo import AccessRequestRepo, ButtonsRepo
from storage.connections_repo import ConnectionsRepo
from storage.flows_repo import MongoFlowStore
from storage.mongo import Storage
from storage.runs_repo import MongoRunStore
from storage.schedules_repo import MongoScheduleStore
from storage.users_repo import MongoUserStore
from storage.workspace_repo import WorkspaceRepo

log = logging.getLogger(__name__)


class Service(Protocol):
    """Something with background work: started after the indexes, stopped before the DB."""

    async def start(self) -> None: ...

    async def stop(self) -> None: ...


class FlowsPort(
    FlowStore,
    SharedFlowStore,
    FlowBindingStore,
    ScheduledFlowSource,
    AutomatedFlowSource,
    Protocol,
):
    """The flow store, as every service that reads or writes flows sees it."""


@dataclass
class Stores:
    """Every storage port, one per aggregate."""

    flows: FlowsPort
    users: UserStore
    runs: RunStore
    audit: AuditStore
    buttons: ButtonStore
    access_requests: AccessRequestStore
    policies: PolicyStore
    approvals: ApprovalStore
    connections: ConnectionStore
    schedules: ScheduleStateStore
    asks: AskStore


def mongo_stores(storage: Storage, run_retention: timedelta | None = None) -> Stores:
    """The MongoDB repositories; `storage` creates their indexes at start."""
    db = storage.db
    stores = Stores(
        flows=MongoFlowStore(db),
        users=MongoUserStore(db),
        runs=MongoRunStore(db, run_retention),
        audit=AuditRepo(db),
        buttons=ButtonsRepo(db),
        access_requests=AccessRequestRepo(db),
        policies=WorkspaceRepo(db),
        approvals=ApprovalsRepo(db),
        connections=ConnectionsRepo(db),
        schedules=MongoScheduleStore(db),
        asks=AsksRepo(db),
    )
    for repository in vars(stores).values():
        storage.add(repository)
    return stores


@dataclass(frozen=True)
class Overrides:
    """Parts given to `build` instead of the ones it makes; None: the usual one."""

    clock: Clock | None = None
    ids: IdGenerator | None = None
    client: AsyncWebClient | None = None  # Slack's Web API
    messenger: Messenger | None = None
    directory: Directory | None = None
    http: HttpClient | None = None  # what http_request steps call
    secret_box: SecretBox | None = None
    stores: Stores | None = None
    socket_ping_interval: float | None = None  # Socket Mode's ping (and dead-socket check)


@dataclass
class Flowbot:
    settings: Settings
    storage: Storage
    deps: HandlerDeps
    bolt: AsyncApp | None
    services: list[Service] = field(default_factory=list)
    socket: SocketMode | None = None  # with SLACK_APP_TOKEN: the Socket Mode connection

    async def start(self) -> None:
        await self.storage.ensure_indexes()
        for service in self.services:
            await service.start()

    async def stop(self) -> None:
        for service in reversed(self.services):
            try:
                await service.stop()
            except Exception:
                log.exception("stopping %s failed", type(service).__name__)
        self.storage.close()


@dataclass(frozen=True)
class _Base:
    """What every area is built on."""

    clock: Clock
    ids: IdGenerator
    client: AsyncWebClient
    messenger: Messenger
    directory: Directory
    stores: Stores


def _base(settings: Settings, storage: Storage, overrides: Overrides) -> _Base:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    client = overrides.client or make_client(token, settings.slack_api_url)
    return _Base(
        clock=overrides.clock or SystemClock(),
        ids=overrides.ids or RandomIds(),
        client=client,
        messenger=overrides.messenger
        or SlackMessenger(client, ChannelTurns(settings.flowbot_posts_per_channel)),
        directory=overrides.directory or SlackDirectory(client),
        stores=overrides.stores or mongo_stores(storage, settings.flowbot_run_retention),
    )


def _connections(settings: Settings, base: _Base, overrides: Overrides) -> ConnectionService:
    http = overrides.http or AiohttpHttpClient(
        AddressPolicy.from_entries(settings.allowed_http_hosts)
    )
    return ConnectionService(
        base.stores.connections,
        base.stores.flows,
        overrides.secret_box or load_secret_box(settings),
        base.clock,
        base.ids,
        http,
        directory=base.directory,
    )


def build(settings: Settings, mongodb_uri: str, overrides: Overrides | None = None) -> Flowbot:
    overrides = overrides or Overrides()
    storage = Storage(mongodb_uri, settings.mongodb_db)
    base = _base(settings, storage, overrides)
    stores, clock, ids = base.stores, base.clock, base.ids
    messenger, directory, client = base.messenger, base.directory, base.client
    services: list[Service] = []

    # --- runs: the engine

    executors = builtin_executors(messenger, directory)
    runner = Runner(
        stores.runs,
        executors,
        clock,
        ids,
        OffPathNotices(SlackRunNotifier(messenger, directory, clock)),
        describe_error=describe_error,
        describe_cancel=run_cards.cancel_reason,
    )
    services.append(runner)

    # --- approvals (approvers' App Homes are re-published when their approvals change)

    async def refresh_home(team_id: str, user_id: str) -> None:
        await home_listeners.publish_home(deps, team_id, user_id)

    approval_notifier = SlackApprovalNotifier(
        messenger, client, refresh_home if settings.slack_configured else None
    )
    approvals = ApprovalService(
        stores.approvals,
        approval_notifier,
        directory,
        clock,
        ids,
        resumer=runner,
    )
    executors.register("approval", ApprovalStepExecutor(approvals))
    services.append(approvals)

    # --- ask steps: forms, waiting like approvals and listed with them
    asks = AskService(
        stores.asks,
        SlackAskNotifier(
            messenger,
            approval_notifier.bot_user,
            refresh_home if settings.slack_configured else None,
        ),
        directory,
        clock,
        ids,
        resumer=runner,
    )
    executors.register("ask", AskStepExecutor(asks))
    services.append(asks)

    # --- connections

    connections = _connections(settings, base, overrides)
    executors.register("http_request", HttpRequestExecutor(connections, directory))
    # Connections made with an older key are re-encrypted with the newest one at start.
    services.append(KeyRotation(connections))

    # --- schedules and events

    schedules = ScheduleService(
        stores.flows, runner, stores.schedules, clock, SlackScheduleNotifier(messenger)
    )
    services.append(schedules)

    # --- a deleted flow's runs in progress are cancelled, and their pending approvals
    runner.on_cancelled.append(approvals.on_run_cancelled)
    runner.on_cancelled.append(asks.on_run_cancelled)

    async def cancel_runs_of_deleted_flow(team_id: str, flow_id: str, deleted_by: str) -> None:
        await runner.cancel_flow_runs(team_id, flow_id, deleted_by, "the flow was deleted")

    # --- sharing, and flows: definitions and authoring

    sharing = SharingService(
        stores.flows,
        stores.audit,
        stores.buttons,
        stores.access_requests,
        stores.policies,
        directory,
        SlackSharingNotifier(messenger),
        clock,
        ids,
    )
    catalog = FlowCatalog(
        stores.flows,
        directory,
        clock,
        ids,
        creation_policy=sharing,
        on_change=[schedules.on_flow_changed],
        on_delete=[cancel_runs_of_deleted_flow],
    )
    triggers = TriggerService(
        stores.flows,
        runner,
        SlackChannelNames(client),
        clock,
        settings.flowbot_max_trigger_depth,
        public_url=settings.flowbot_public_url,
    )

    deps = HandlerDeps(
        client=client,
        messenger=messenger,
        directory=directory,
        clock=clock,
        ids=ids,
        catalog=catalog,
        runner=runner,
        triggers=triggers,
        approvals=approvals,
        users=stores.users,
        sharing=sharing,
        connections=connections,
        runs=RunRequests(catalog, runner, directory),
        asks=asks,
        home_sections=home_sections(),
    )
    bolt = slack_app(settings, client, deps) if settings.slack_configured else None
    socket = _socket_mode(settings, bolt, client, overrides)
    if socket is not None:
        services.append(socket)  # last: Slack's requests arrive once everything runs
    return Flowbot(
        settings=settings, storage=storage, deps=deps, bolt=bolt, services=services, socket=socket
    )


def _socket_mode(
    settings: Settings, bolt: AsyncApp | None, client: AsyncWebClient, overrides: Overrides
) -> SocketMode | None:
    if bolt is None or settings.slack_app_token is None:
        return None
    return SocketMode(
        bolt,
        settings.slack_app_token.get_secret_value(),
        client,
        ping_interval=overrides.socket_ping_interval or PING_INTERVAL,
    )


# ------------------------------------------------------------------ the Slack side


def subcommands() -> list[Subcommand]:
    """`/flow`'s subcommands, in the order help lists them."""
    return [
        *command_listeners.SUBCOMMANDS,
        *flow_listeners.SUBCOMMANDS,
        *connection_listeners.SUBCOMMANDS,
        *run_listeners.SUBCOMMANDS,
        *sharing_listeners.SUBCOMMANDS,
        *approval_listeners.SUBCOMMANDS,
        *webhook_listeners.SUBCOMMANDS,
    ]


def home_sections() -> list[tuple[str, HomeSection]]:
    """The App Home's sections after My flows, in order."""
    return [
        (MY_BUTTONS_BLOCK, sharing_listeners.my_buttons_section),
        (approval_listeners.HOME_SECTION, approval_listeners.pending_approvals_section),
        (ask_listeners.HOME_SECTION, ask_listeners.pending_asks_section),
    ]


def slack_app(settings: Settings, client: AsyncWebClient, deps: HandlerDeps) -> AsyncApp:
    secret = settings.slack_signing_secret
    app = AsyncApp(
        client=client,
        # Socket Mode alone needs no signing secret (the socket is authenticated).
        signing_secret=secret.get_secret_value() if secret else "",
        process_before_response=False,
        raise_error_for_unhandled_request=False,
        # bot.server verifies the signature before anything parses the body.
        request_verification_enabled=False,
    )
    error_listeners.register(app)
    SlashRouter(subcommands()).register(app, deps)
    # Actions, views and events, in the order Bolt tries them.
    for listeners in (
        home_listeners,
        flow_listeners,
        run_listeners,
        sharing_listeners,
        approval_listeners,
        ask_listeners,
        connection_listeners,
        event_listeners,
    ):
        listeners.register(app, deps)
    return app
