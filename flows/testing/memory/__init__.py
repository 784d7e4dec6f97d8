"""In-memory implementations of the storage ports of `flows`.

Each class behaves as its MongoDB repository in `storage/` does (tests/contract runs the
same tests against both): the same compare-and-set rules, the same uniqueness, the same
order of results. Records go in and come out as copies, and values come back as storage
gives them back (plain data: a `date` becomes its ISO text, a tuple a list), so a test
cannot pass by sharing an object with the store.

Not thread-safe, and not meant to be: one event loop, no awaits inside a compare-and-set.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import TYPE_CHECKING

from flows.testing.memory.approvals import MemoryApprovalStore
from flows.testing.memory.asks import MemoryAskStore
from flows.testing.memory.catalog import MemoryFlowStore, MemoryUserStore
from flows.testing.memory.connections import MemoryConnectionStore
from flows.testing.memory.plain import plain
from flows.testing.memory.runs import MemoryRunStore
from flows.testing.memory.schedules import MemoryScheduleStore
from flows.testing.memory.sharing import (
    MemoryAccessRequestStore,
    MemoryAuditStore,
    MemoryButtonStore,
    MemoryPolicyStore,
)
from flows.testing.memory.triggers import MemoryFailureStreaks, MemoryTriggerLog


@dataclass
class MemoryStores:
    """Every store, in memory: what `storage.mongo.Storage` holds, for unit tests."""

    runs: MemoryRunStore = field(default_factory=MemoryRunStore)
    flows: MemoryFlowStore = field(default_factory=MemoryFlowStore)
    users: MemoryUserStore = field(default_factory=MemoryUserStore)
    approvals: MemoryApprovalStore = field(default_factory=MemoryApprovalStore)
    schedules: MemoryScheduleStore = field(default_factory=MemoryScheduleStore)
    connections: MemoryConnectionStore = field(default_factory=MemoryConnectionStore)
    audit: MemoryAuditStore = field(default_factory=MemoryAuditStore)
    buttons: MemoryButtonStore = field(default_factory=MemoryButtonStore)
    access_requests: MemoryAccessRequestStore = field(default_factory=MemoryAccessRequestStore)
    policies: MemoryPolicyStore = field(default_factory=MemoryPolicyStore)
    asks: MemoryAskStore = field(default_factory=MemoryAskStore)
    trigger_log: MemoryTriggerLog = field(default_factory=MemoryTriggerLog)
    failure_streaks: MemoryFailureStreaks = field(default_factory=MemoryFailureStreaks)


__all__ = [
    "MemoryAccessRequestStore",
    "MemoryApprovalStore",
    "MemoryAskStore",
    "MemoryAuditStore",
    "MemoryButtonStore",
    "MemoryConnectionStore",
    "MemoryFailureStreaks",
    "MemoryFlowStore",
    "MemoryPolicyStore",
    "MemoryRunStore",
    "MemoryScheduleStore",
    "MemoryStores",
    "MemoryTriggerLog",
    "MemoryUserStore",
    "plain",
]


if TYPE_CHECKING:
    # mypy proves each store implements its port (the contract tests prove behaviour).
    from flows.alerts import FailureStreakStore
    from flows.approval_model import ApprovalStore
    from flows.ask_model import AskStore
    from flows.catalog import FlowStore, UserStore
    from flows.connections import ConnectionStore, FlowBindingStore
    from flows.run_model import RunStore
    from flows.scheduling import ScheduleStateStore
    from flows.sharing.ports import (
        AccessRequestStore,
        AuditStore,
        ButtonStore,
        PolicyStore,
        SharedFlowStore,
    )
    from flows.trigger_log import TriggerLogStore

    _runs: RunStore = MemoryRunStore()
    _flows: FlowStore = MemoryFlowStore()
    _shared: SharedFlowStore = MemoryFlowStore()
    _bindings: FlowBindingStore = MemoryFlowStore()
    _users: UserStore = MemoryUserStore()
    _approvals: ApprovalStore = MemoryApprovalStore()
    _asks: AskStore = MemoryAskStore()
    _schedules: ScheduleStateStore = MemoryScheduleStore()
    _connections: ConnectionStore = MemoryConnectionStore()
    _audit: AuditStore = MemoryAuditStore()
    _buttons: ButtonStore = MemoryButtonStore()
    _requests: AccessRequestStore = MemoryAccessRequestStore()
    _policies: PolicyStore = MemoryPolicyStore()
    _trigger_log: TriggerLogStore = MemoryTriggerLog()
    _streaks: FailureStreakStore = MemoryFailureStreaks()
