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

from adapters.alert_notifier import SlackAlertNotifier
from adapters.approval_notifier import SlackApprovalNotifier
from adapters.ask_notifier import SlackAskNotifier
from adapters.channels import SlackChannelNames
from adapters.response_urls import ResponseUrls
from adapters.run_notifier import SlackRunNotifier, describe_error
from adapters.schedule_notifier import SlackScheduleNotifier
from adapters.sealing_client import SealingWebClient
from adapters.sharing_notifier import SlackSharingNotifier
from adapters.slack import ChannelTurns, SlackDirectory, SlackMessenger, make_client
from adapters.slack_actions import SlackActionsApi
from bot.ack_gate import AckGate, GatedAcks
from bot.http_client import AiohttpHttpClient
from bot.keys import load_secret_box
from bot.metrics import PrometheusMetrics
from bot.oauth import OAuth, build_oauth
from bot.respond import PooledResponds
from bot.settings import Settings
from bot.socket_mode import PING_INTERVAL, SocketMode
from cards import runs as run_cards
from cards.home import MY_BUTTONS_BLOCK
from flows.alerts import FailureAlerts, FailureStreakStore
from flows.approvals import ApprovalService, ApprovalStepExecutor, ApprovalStore
from flows.ask_model import AskStore
from flows.asks import AskService, AskStepExecutor
from flows.catalog import FlowCatalog, FlowStore, UserStore
from flows.child_cancel import ChildRuns
from flows.child_flows import CallFlowExecutor
from flows.concurrency import Concurrency, RunSlotStore
from flows.connections import (
    ConnectionService,
    ConnectionStore,
    FlowBindingStore,
    HttpRequestExecutor,
    KeyRotation,
)
from flows.deliveries import DeliveryLog
from flows.foreground import Foreground
from flows.http_policy import AddressPolicy, HttpClient
from flows.metrics import MeteredRunStore, OperationalCounts
from flows.modal_context import ModalContexts, ModalContextStore
from flows.ports import Clock, Directory, IdGenerator, Messenger, RandomIds, SystemClock
from flows.run_control import RunControl
from flows.run_notices import OffPathNotices
from flows.run_requests import RunRequests
from flows.runner import Runner, RunStore
from flows.schedule_insight import ScheduleInsight
from flows.scheduling import ScheduledFlowSource, ScheduleService, ScheduleStateStore
from flows.sealed import MetadataSeal, derive_key
from flows.secrets import SecretBox
from flows.served import ServedWorkspacesOnly
from flows.sharing import (
    AccessRequestStore,
    AuditStore,
    ButtonStore,
    PolicyStore,
    SharedFlowStore,
    SharingService,
)
from flows.slack_steps import register_slack_steps
from flows.steps import builtin_executors
from flows.trigger_log import TriggerLog, TriggerLogStore
from flows.triggers import AutomatedFlowSource, TriggerService
from handlers import approvals as approval_listeners
from handlers import asks as ask_listeners
from handlers import commands as command_listeners
from handlers import connections as connection_listeners
from handlers import errors as error_listeners
from handlers import events as event_listeners
from handlers import flow_commands as flow_listeners
from handlers import home as home_listeners
from handlers import installs as install_listeners
from handlers import metadata as metadata_listeners
from handlers import run_commands as run_listeners
from handlers import run_control as run_control_listeners
from handlers import schedule_commands as schedule_listeners
from handlers import sharing as sharing_listeners
from handlers import webhooks as webhook_listeners
from handlers.commands import SlashRouter, Subcommand
from handlers.deps import HandlerDeps, HomeSection
from storage.alerts_repo import MongoFailureStreaks
from storage.approvals_repo import ApprovalsRepo
from storage.asks_repo import AsksRepo
from storage.audit_repo import AuditRepo
from storage.buttons_repo import AccessRequestRepo, ButtonsRepo
from storage.connections_repo import ConnectionsRepo
from storage.counts_repo import MongoOperationalCounts
from storage.deliveries_repo import MongoDeliveryLog
from storage.flows_repo import MongoFlowStore
from storage.modal_contexts_repo import MongoModalContexts
from storage.mongo import Storage
from storage.run_slots_repo import MongoRunSlots
from storage.runs_repo import MongoRunStore
from storage.schedules_repo import MongoScheduleStore
from storage.trigger_log_repo import MongoTriggerLog
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
    trigger_log: TriggerLogStore
    failure_streaks: FailureStreakStore
    deliveries: DeliveryLog
    run_slots: RunSlotStore
    modal_contexts: ModalContextStore


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
        trigger_log=MongoTriggerLog(db),
        failure_streaks=MongoFailureStreaks(db),
        deliveries=MongoDeliveryLog(db),
        run_slots=MongoRunSlots(db),
        modal_contexts=MongoModalContexts(db),
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
    # GET /metrics: this bot's figures, and the counts read when scraped
    metrics: PrometheusMetrics = field(default_factory=PrometheusMetrics)
    counts: OperationalCounts | None = None
    oauth: OAuth | None = None  # many workspaces: installed through OAuth v2
    # Work after an ack waits while other requests are acknowledged (bot/ack_gate.py).
    ack_gate: AckGate = field(default_factory=AckGate)

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
    metrics: PrometheusMetrics
    secret_box: SecretBox
    oauth: OAuth | None


def metadata_seal(settings: Settings) -> MetadataSeal:
    """Seals views' private_metadata with a key derived from the signing secret."""
    secret = settings.slack_signing_secret
    return MetadataSeal(derive_key(secret.get_secret_value() if secret else ""))


def _base(settings: Settings, storage: Storage, overrides: Overrides) -> _Base:
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    metrics = PrometheusMetrics()
    clock = overrides.clock or SystemClock()
    box = overrides.secret_box or load_secret_box(settings)
    seal = metadata_seal(settings)
    # Many workspaces: every call takes the token of the workspace it is for.
    oauth = build_oauth(settings, storage, box, clock, metrics, seal) if settings.oauth else None
    client = overrides.client or (
        oauth.client if oauth else make_client(token, settings.slack_api_url, metrics, seal)
    )
    return _Base(
        clock=clock,
        ids=overrides.ids or RandomIds(),
        client=client,
        messenger=overrides.messenger
        or SlackMessenger(client, ChannelTurns(settings.flowbot_posts_per_channel)),
        directory=overrides.directory
        or SlackDirectory(client, for_team=oauth.clients.for_team if oauth else None),
        stores=overrides.stores or mongo_stores(storage, settings.flowbot_run_retention),
        metrics=metrics,
        secret_box=box,
        oauth=oauth,
    )


def _connections(settings: Settings, base: _Base, overrides: Overrides) -> ConnectionService:
    http = overrides.http or AiohttpHttpClient(
        AddressPolicy.from_entries(settings.allowed_http_hosts)
    )
    return ConnectionService(
        base.stores.connections,
        base.stores.flows,
        base.secret_box,
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
    # Answers to response URLs: one pool of connections, closed last at shutdown.
    response_urls = ResponseUrls()
    services: list[Service] = [response_urls]

    # --- runs: the engine

    executors = builtin_executors(messenger, directory)
    # A flow's `concurrency`: runs past the limit are queued and started in order.
    trigger_log = TriggerLog(stores.trigger_log, clock, ids)
    concurrency = Concurrency(stores.run_slots, stores.runs, trigger_log=trigger_log)
    runner = Runner(
        MeteredRunStore(stores.runs, base.metrics),
        executors,
        clock,
        ids,
        OffPathNotices(SlackRunNotifier(messenger, directory, clock, response_urls)),
        describe_error=describe_error,
        describe_cancel=run_cards.cancel_reason,
        admit=concurrency.admit,
    )
    runner.on_finished.append(concurrency.run_ended)
    runner.on_cancelled.append(concurrency.run_cancelled)
    services.append(runner)
    services.append(concurrency)

    # --- approvals (approvers' App Homes are re-published when their approvals change)

    # Clicks and their resumed runs go before decisions' leftovers (flows/foreground.py).
    foreground = Foreground()

    async def refresh_home(team_id: str, user_id: str) -> None:
        await home_listeners.publish_home(deps, team_id, user_id, foreground.pause)

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
        foreground=foreground,
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
        foreground=foreground,
    )
    executors.register("ask", AskStepExecutor(asks))
    services.append(asks)

    # --- connections

    connections = _connections(settings, base, overrides)
    executors.register("http_request", HttpRequestExecutor(connections, directory))
    # Slack action steps: update, react, create a channel, invite, topic, look up (§13).
    register_slack_steps(executors, SlackActionsApi(client), directory)
    # Connections made with an older key are re-encrypted with the newest one at start.
    services.append(KeyRotation(connections))

    # --- schedules and events

    services.append(trigger_log)
    # Many workspaces: a workspace that removed the app gets no scheduled runs meanwhile.
    starter = ServedWorkspacesOnly(runner, base.oauth.tokens.serves) if base.oauth else runner
    schedules = ScheduleService(
        stores.flows,
        starter,
        stores.schedules,
        clock,
        SlackScheduleNotifier(messenger),
        history=stores.runs,
        trigger_log=trigger_log,
    )
    services.append(schedules)
    runner.on_finished.append(schedules.on_run_finished)
    alerts = FailureAlerts(stores.failure_streaks, stores.flows, SlackAlertNotifier(messenger))
    runner.on_finished.append(alerts.on_run_finished)
    services.insert(0, alerts)  # stops last: settles the successes of runs ended meanwhile

    # --- a deleted flow's runs in progress are cancelled, and their pending approvals
    runner.on_cancelled.append(approvals.on_run_cancelled)
    runner.on_cancelled.append(asks.on_run_cancelled)
    # … and the runs it started with call_flow (theirs close in turn).
    runner.on_cancelled.append(ChildRuns(runner).on_run_cancelled)

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
        on_delete=[cancel_runs_of_deleted_flow, alerts.on_flow_deleted],
    )
    triggers = TriggerService(
        stores.flows,
        starter,  # webhooks of a workspace that removed the app are refused (409)
        SlackChannelNames(client),
        clock,
        settings.flowbot_max_trigger_depth,
        public_url=settings.flowbot_public_url,
        trigger_log=trigger_log,
    )

    run_requests = RunRequests(catalog, runner, directory, trigger_log)
    executors.register("call_flow", CallFlowExecutor(run_requests, runner))

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
        runs=run_requests,
        asks=asks,
        home_sections=home_sections(),
        insight=ScheduleInsight(catalog, schedules, trigger_log),
        deliveries=stores.deliveries,
        run_control=RunControl(catalog, runner, directory, concurrency),
        modal_contexts=ModalContexts(stores.modal_contexts, clock),
    )
    ack_gate = AckGate(foreground=foreground)
    bolt = (
        slack_app(settings, client, deps, base.oauth, ack_gate, response_urls)
        if settings.slack_configured
        else None
    )
    socket = _socket_mode(settings, bolt, client, overrides)
    if socket is not None:
        services.append(socket)  # last: Slack's requests arrive once everything runs
    return Flowbot(
        settings=settings,
        storage=storage,
        deps=deps,
        bolt=bolt,
        services=services,
        socket=socket,
        metrics=base.metrics,
        counts=MongoOperationalCounts(storage.db),
        oauth=base.oauth,
        ack_gate=ack_gate,
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
        *run_control_listeners.SUBCOMMANDS,
        *sharing_listeners.SUBCOMMANDS,
        *approval_listeners.SUBCOMMANDS,
        *webhook_listeners.SUBCOMMANDS,
        *schedule_listeners.SUBCOMMANDS,
    ]


def home_sections() -> list[tuple[str, HomeSection]]:
    """The App Home's sections after My flows, in order."""
    return [
        (MY_BUTTONS_BLOCK, sharing_listeners.my_buttons_section),
        (approval_listeners.HOME_SECTION, approval_listeners.pending_approvals_section),
        (ask_listeners.HOME_SECTION, ask_listeners.pending_asks_section),
    ]


def slack_app(
    settings: Settings,
    client: AsyncWebClient,
    deps: HandlerDeps,
    oauth: OAuth | None = None,
    ack_gate: AckGate | None = None,
    response_urls: ResponseUrls | None = None,
) -> AsyncApp:
    secret = settings.slack_signing_secret
    app = AsyncApp(
        client=client,
        # Many workspaces: Bolt finds each request's installation in the store.
        oauth_settings=oauth.settings if oauth else None,
        # Socket Mode alone needs no signing secret (the socket is authenticated).
        signing_secret=secret.get_secret_value() if secret else "",
        process_before_response=False,
        raise_error_for_unhandled_request=False,
        # bot.server verifies the signature before anything parses the body.
        request_verification_enabled=False,
        # The bot's own messages reach handlers.events, which never starts a flow with
        # them but records them in the trigger log where they reach a trigger (SPEC §14).
        ignoring_self_events_enabled=False,
    )
    error_listeners.register(app)
    if isinstance(client, SealingWebClient) and client.seal is not None:  # sealed: open it
        metadata_listeners.register(app, client.seal)
    app.middleware(install_listeners.BindWorkspace())
    if response_urls is not None:  # respond() over the app's pooled connections
        app.middleware(PooledResponds(response_urls))
    if ack_gate is not None:  # acknowledgements first: listeners' work after ack() waits
        app.middleware(GatedAcks(ack_gate))
    if oauth is not None:
        install_listeners.register(app, oauth.installations)
    SlashRouter(subcommands()).register(app, deps)
    # Actions, views and events, in the order Bolt tries them.
    for listeners in (
        home_listeners,
        flow_listeners,
        run_listeners,
        run_control_listeners,
        sharing_listeners,
        approval_listeners,
        ask_listeners,
        connection_listeners,
        event_listeners,
    ):
        listeners.register(app, deps)
    return app
