"""Persistent records of the domain: flows as stored, runs. Plain pydantic models.

The storage layer maps them to MongoDB documents (`model_dump(mode="python")`), and the
engine and handlers read and write them through the ports in `flows.ports`.
"""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, Field

from flows.definition import FlowDefinition

Role = Literal["owner", "runner"]
RunStatus = Literal["queued", "running", "waiting", "succeeded", "failed", "cancelled"]
StepStatus = Literal["running", "waiting", "succeeded", "failed", "skipped"]
FINISHED_RUN_STATUSES: frozenset[str] = frozenset({"succeeded", "failed", "cancelled"})


class Share(BaseModel):
    """A principal (U… user, S… user group, C… channel used as a group) and its role."""

    principal: str
    role: Role
    added_by: str
    added_at: datetime


class SlotBinding(BaseModel):
    """Which connection fills a connection slot of a flow, and who attached it."""

    slot: str
    connection_id: str | None = None
    added_by: str | None = None
    # For run-only users: True means "provided by the run-only user", False "use the owner's".
    runner_provides: bool = False


class FlowRecord(BaseModel):
    id: str
    team_id: str
    definition: FlowDefinition
    version: int = 1
    creator: str
    shares: list[Share] = Field(default_factory=list)
    bindings: list[SlotBinding] = Field(default_factory=list)
    enabled: bool = True
    # sha256 of the webhook token of an automated webhook flow; the token itself is not kept.
    webhook_token_hash: str | None = None
    created_at: datetime
    updated_at: datetime
    updated_by: str

    @property
    def name(self) -> str:
        return self.definition.name

    @property
    def kind(self) -> str:
        return self.definition.kind

    def principals(self, role: Role) -> list[str]:
        return [s.principal for s in self.shares if s.role == role]


class RunTrigger(BaseModel):
    """What started a run: a person (manual), a schedule slot, a Slack event or a webhook."""

    type: Literal["manual", "schedule", "message", "reaction", "member_joined", "webhook", "call"]
    user: str | None = None
    data: dict[str, Any] = Field(default_factory=dict)


class StepResult(BaseModel):
    step_id: str
    type: str
    status: StepStatus
    output: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # A waiting step's own wake-up time (several steps may wait at once in branches).
    wake_at: datetime | None = None


class MessageRef(BaseModel):
    channel: str
    ts: str


class RunRecord(BaseModel):
    id: str
    team_id: str
    flow_id: str
    flow_name: str
    flow_version: int
    # The definition as it was when the run started: a run executes one flow version.
    definition: FlowDefinition
    status: RunStatus = "queued"
    started_by: str | None = None
    trigger: RunTrigger
    inputs: dict[str, Any] = Field(default_factory=dict)
    steps: dict[str, StepResult] = Field(default_factory=dict)
    vars: dict[str, Any] = Field(default_factory=dict)
    error: str | None = None
    error_step: str | None = None
    created_at: datetime
    started_at: datetime | None = None
    finished_at: datetime | None = None
    # A parked run: wakes at wake_at (delay, approval timeout) or when waiting_for resolves.
    wake_at: datetime | None = None
    waiting_for: str | None = None
    # Unique key of a scheduled slot or an event, so that one firing makes one run.
    run_key: str | None = None
    depth: int = 0
    notify_message: MessageRef | None = None
    # Flow-level outputs, evaluated when the run succeeds.
    outputs: dict[str, Any] = Field(default_factory=dict)
    # A run started by a call_flow step: the calling run and step, and its call depth.
    parent_run: str | None = None
    parent_step: str | None = None
    call_depth: int = 0
    # Where the starter of an instant run is told the result (their DM, or a response_url).
    reply_to: str | None = None
    # Run control (SPEC §12): queued for a concurrency slot (the waker leaves it), who
    # cancelled it, and each `/flow retry` (by, at, from_step).
    held: bool = False
    cancelled_by: str | None = None
    retries: list[dict[str, Any]] = Field(default_factory=list)

    @property
    def rerun_of(self) -> str | None:
        """The run this one reruns (`/flow rerun`), if any."""
        value = self.trigger.data.get("rerun_of")
        return str(value) if value else None

    @property
    def finished(self) -> bool:
        return self.status in FINISHED_RUN_STATUSES
