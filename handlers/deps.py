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
    # Services of the feature areas are added below, one line each.
    catalog: FlowCatalog | None = None
    runner: Runner | None = None
    users: UserStore | None = None
    approvals: ApprovalService | None = None
    sharing: SharingService | None = None
    triggers: TriggerService | None = None
    connections: ConnectionService | None = None
