"""What the Slack listeners need, passed explicitly (built in `bot.app`)."""

from __future__ import annotations

from dataclasses import dataclass

from slack_sdk.web.async_client import AsyncWebClient

from flows.approvals import ApprovalService
from flows.catalog import FlowCatalog, UserStore
from flows.connections import ConnectionService
from flows.ports import Clock, Directory, IdGenerator, Messenger
from flows.runner import Runner
from flows.sharing import SharingService
from flows.triggers import TriggerService


@dataclass
class HandlerDeps:
    client: AsyncWebClient
    messenger: Messenger
    directory: Directory
    clock: Clock
    ids: IdGenerator
    catalog: FlowCatalog
    runner: Runner
    users: UserStore
    approvals: ApprovalService
    sharing: SharingService
    triggers: TriggerService
    connections: ConnectionService
