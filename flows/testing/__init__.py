"""Test doubles shipped with `flows`, as temporalio ships its test environment.

- `flows.testing.memory`: in-memory implementations of the storage ports (`RunStore`,
  `FlowStore`, `ApprovalStore`, `ScheduleStateStore`, …). They pass the same contract
  tests as the MongoDB repositories (tests/contract), so a use case can be unit tested
  without a database.
- `flows.testing.fakes`: hand-written fakes of the outgoing ports: a clock that moves
  only when told, sequential ids, a Messenger that records what it was asked to post, a
  Directory with fixed members.

Like the rest of `flows`, nothing here imports storage, Slack or the network.
"""
