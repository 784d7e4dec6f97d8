"""What the Slack listeners need, passed explicitly (built in `bot.app`)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass
from typing import Any

from slack_sdk.web.async_client import AsyncWebClient

from flows.approvals import ApprovalService
from flows.asks import AskService
from flows.catalog import FlowCatalog, UserStore
from flows.connections import ConnectionService
from flows.deliveries import DeliveryLog
from flows.modal_context import ModalContexts
from flows.ports import Clock, Directory, IdGenerator, Messenger
from flows.run_control import RunControl
from flows.run_requests import RunRequests
from flows.runner import Runner
from flows.schedule_insight import ScheduleInsight
from flows.sharing import SharingService
from flows.triggers import TriggerService

# A section of the App Home another area adds: (deps, team_id, user_id) → its blocks.
HomeSection = Callable[["HandlerDeps", str, str], Awaitable[list[dict[str, Any]]]]


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
    runs: RunRequests
    asks: AskService
    # What each open modal needs on submission, kept on the server (issue 19): a modal's
    # private_metadata carries only the id of its context.
    modal_contexts: ModalContexts
    # The App Home's sections after My flows, by name, in order ("my_buttons" fills My
    # buttons): given by bot.app.
    home_sections: Sequence[tuple[str, HomeSection]] = ()
    # `/flow next`, `/flow why`, `/flow backfill` (SPEC §14).
    insight: ScheduleInsight | None = None
    # Deliveries taken in, across restarts (a replayed request does nothing); None: in
    # this process only.
    deliveries: DeliveryLog | None = None
    # Cancel, retry and rerun of one run (SPEC §12); given by bot.app.
    run_control: RunControl | None = None
