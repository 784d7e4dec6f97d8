"""The composition root: settings → storage, Slack client, services, Bolt app."""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Protocol

from slack_bolt.async_app import AsyncApp

import handlers
from bot.http_client import AiohttpHttpClient
from bot.keys import load_secret_box
from bot.settings import Settings
from flows.approvals import ApprovalService, ApprovalStepExecutor
from flows.catalog import FlowCatalog
from flows.connections import ConnectionService, HttpRequestExecutor, KeyRotation
from flows.http_policy import AddressPolicy
from flows.ports import Clock, IdGenerator, RandomIds, SystemClock
from flows.runner import Runner
from flows.scheduling import ScheduleService
from flows.sharing import SharingService
from flows.steps import builtin_executors
from flows.triggers import TriggerService
from handlers.approvals import SlackApprovalNotifier
from handlers.deps import HandlerDeps
from handlers.events import SlackChannelNames, SlackScheduleNotifier
from handlers.notify import SlackRunNotifier, describe_error
from handlers.sharing import SlackSharingNotifier
from handlers.slack_adapters import SlackDirectory, SlackMessenger, make_client
from storage.approvals_repo import ApprovalsRepo
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


@dataclass
class Flowbot:
    settings: Settings
    storage: Storage
    deps: HandlerDeps
    bolt: AsyncApp | None
    services: list[Service] = field(default_factory=list)

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


def build(
    settings: Settings,
    mongodb_uri: str,
    clock: Clock | None = None,
    ids: IdGenerator | None = None,
) -> Flowbot:
    clock = clock or SystemClock()
    ids = ids or RandomIds()
    storage = Storage(mongodb_uri, settings.mongodb_db)
    token = settings.slack_bot_token.get_secret_value() if settings.slack_bot_token else ""
    client = make_client(token, settings.slack_api_url)
    messenger = SlackMessenger(client)
    directory = SlackDirectory(client)
    services: list[Service] = []

    # --- flows: definitions and authoring
    flow_store = MongoFlowStore(storage.db)
    user_store = MongoUserStore(storage.db)
    storage.add(flow_store)
    storage.add(user_store)
    catalog = FlowCatalog(flow_store, directory, clock, ids)

    # --- runs: the engine

    run_store = MongoRunStore(storage.db)
    storage.add(run_store)
    executors = builtin_executors(messenger, directory)
    runner = Runner(
        run_store,
        executors,
        clock,
        ids,
        SlackRunNotifier(messenger, directory, clock),
        describe_error=describe_error,
    )
    services.append(runner)

    # --- sharing

    audit_repo, buttons_repo = AuditRepo(storage.db), ButtonsRepo(storage.db)
    requests_repo, workspace_repo = AccessRequestRepo(storage.db), WorkspaceRepo(storage.db)
    for repository in (audit_repo, buttons_repo, requests_repo, workspace_repo):
        storage.add(repository)
    sharing = SharingService(
        flow_store,
        audit_repo,
        buttons_repo,
        requests_repo,
        workspace_repo,
        directory,
        SlackSharingNotifier(messenger),
        clock,
        ids,
    )
    catalog.creation_policy = sharing

    # --- approvals

    approvals_repo = ApprovalsRepo(storage.db)
    storage.add(approvals_repo)
    approvals = ApprovalService(
        approvals_repo,
        SlackApprovalNotifier(messenger, client),
        directory,
        clock,
        ids,
        resumer=runner,
    )
    executors.register("approval", ApprovalStepExecutor(approvals))
    services.append(approvals)

    # --- connections

    connections_repo = ConnectionsRepo(storage.db)
    storage.add(connections_repo)
    connections = ConnectionService(
        connections_repo,
        flow_store,
        load_secret_box(settings),
        clock,
        ids,
        AiohttpHttpClient(AddressPolicy.from_entries(settings.allowed_http_hosts)),
    )
    executors.register("http_request", HttpRequestExecutor(connections, directory))
    # Connections made with an older key are re-encrypted with the newest one at start.
    services.append(KeyRotation(connections))

    # --- schedules and events

    schedule_store = MongoScheduleStore(storage.db)
    storage.add(schedule_store)
    schedules = ScheduleService(
        flow_store, runner, schedule_store, clock, SlackScheduleNotifier(messenger)
    )
    catalog.on_change.append(schedules.on_flow_changed)
    services.append(schedules)

    # --- a deleted flow's runs in progress are cancelled, and their pending approvals
    runner.on_cancelled.append(approvals.on_run_cancelled)

    async def cancel_runs_of_deleted_flow(team_id: str, flow_id: str, deleted_by: str) -> None:
        await runner.cancel_flow_runs(team_id, flow_id, deleted_by, "the flow was deleted")

    catalog.on_delete.append(cancel_runs_of_deleted_flow)
    triggers = TriggerService(
        flow_store,
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
        users=user_store,
        sharing=sharing,
        connections=connections,
    )

    bolt: AsyncApp | None = None
    if settings.slack_configured:
        assert settings.slack_signing_secret is not None
        bolt = AsyncApp(
            client=client,
            signing_secret=settings.slack_signing_secret.get_secret_value(),
            process_before_response=False,
            raise_error_for_unhandled_request=False,
            # bot.server verifies the signature before anything parses the body.
            request_verification_enabled=False,
        )
        handlers.register_all(bolt, deps)
    return Flowbot(settings=settings, storage=storage, deps=deps, bolt=bolt, services=services)
