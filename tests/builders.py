"""Records for the unit and contract layers, built without the bot: flows, runs, approvals.

Times are whole seconds: MongoDB keeps milliseconds, so a record read back from either
store compares equal to the one written."""

from __future__ import annotations

from datetime import datetime, timezone
from typing import Any

from flows.approval_model import ApprovalRecord
from flows.definition import parse_definition
from flows.records import FlowRecord, RunRecord, RunTrigger, Share

TEAM = "T0TEAM"
OTHER_TEAM = "T0OTHER"
ALICE = "U0ALICE"
BOB = "U0BOB"
CAROL = "U0CAROL"
DAVE = "U0DAVE"
T0 = datetime(2026, 11, 2, 9, 0, tzinfo=timezone.utc)

SIMPLE = """
name: {name}
steps:
  - {{id: hello, type: post_message, channel: "#general", text: "hello"}}
"""


def flow_record(
    source: str | None = None,
    *,
    name: str = "Standup",
    flow_id: str = "F1",
    team_id: str = TEAM,
    creator: str = ALICE,
    shares: list[Share] | None = None,
    enabled: bool = True,
    at: datetime = T0,
) -> FlowRecord:
    definition = parse_definition(source if source is not None else SIMPLE.format(name=name))
    return FlowRecord(
        id=flow_id,
        team_id=team_id,
        definition=definition,
        creator=creator,
        shares=shares or [],
        enabled=enabled,
        created_at=at,
        updated_at=at,
        updated_by=creator,
    )


def share(principal: str, role: str = "runner", by: str = ALICE, at: datetime = T0) -> Share:
    return Share(principal=principal, role=role, added_by=by, added_at=at)  # type: ignore[arg-type]


def run_record(
    flow: FlowRecord | None = None,
    *,
    run_id: str = "R1",
    started_by: str | None = ALICE,
    created_at: datetime = T0,
    run_key: str | None = None,
    **fields: Any,
) -> RunRecord:
    flow = flow or flow_record()
    return RunRecord(
        id=run_id,
        team_id=flow.team_id,
        flow_id=flow.id,
        flow_name=flow.name,
        flow_version=flow.version,
        definition=flow.definition,
        started_by=started_by,
        trigger=RunTrigger(type="manual", user=started_by),
        created_at=created_at,
        started_at=created_at,
        run_key=run_key,
        **fields,
    )


def approval_record(
    approval_id: str = "A1",
    *,
    run_id: str = "R1",
    step_id: str = "ask",
    approvers: list[str] | None = None,
    created_at: datetime = T0,
    **fields: Any,
) -> ApprovalRecord:
    return ApprovalRecord(
        id=approval_id,
        team_id=fields.pop("team_id", TEAM),
        run_id=run_id,
        step_id=step_id,
        flow_id="F1",
        flow_name="Expense",
        requester=ALICE,
        title="Pay 40 EUR?",
        approvers=approvers if approvers is not None else [BOB, CAROL],
        created_at=created_at,
        **fields,
    )
