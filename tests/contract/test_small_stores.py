"""The smaller ports: connections, what the bot remembers of people, workspace policy,
the sharing audit trail, My buttons and access requests."""

from __future__ import annotations

from datetime import timedelta

import pytest

from flows.catalog import UserStore
from flows.connections import ConnectionRecord, ConnectionStore, DuplicateConnectionName
from flows.records import MessageRef
from flows.sharing.model import AccessRequest, AuditEntry, WorkspacePolicy
from flows.sharing.ports import AccessRequestStore, AuditStore, ButtonStore, PolicyStore
from tests.builders import ALICE, BOB, CAROL, OTHER_TEAM, T0, TEAM

LATER = T0 + timedelta(minutes=1)


def connection(
    connection_id: str = "K1", name: str = "Ledger API", owner: str = ALICE, **fields: object
) -> ConnectionRecord:
    data: dict[str, object] = {
        "id": connection_id,
        "team_id": TEAM,
        "owner": owner,
        "name": name,
        "kind": "http_bearer",
        "base_url": "https://ledger.example.com/api",
        "ciphertext": "gAAAA-secret",
        "key_id": "key1",
        "hint": "…abcd",
        "created_at": T0,
        "updated_at": T0,
    }
    data.update(fields)
    return ConnectionRecord.model_validate(data)


# ---------------------------------------------------------------- connections


async def test_a_connection_reads_back_by_id_and_by_name(connections: ConnectionStore) -> None:
    record = connection()
    await connections.insert(record)
    assert await connections.get(TEAM, "K1") == record
    assert await connections.get(OTHER_TEAM, "K1") is None
    assert await connections.find_by_name(TEAM, ALICE, "  ledger   API ") == record
    assert await connections.find_by_name(TEAM, BOB, "Ledger API") is None


async def test_connection_names_are_unique_per_owner(connections: ConnectionStore) -> None:
    await connections.insert(connection())
    with pytest.raises(DuplicateConnectionName):
        await connections.insert(connection("K2", name="LEDGER api"))
    await connections.insert(connection("K3", owner=BOB))
    await connections.insert(connection("K4", name="Other"))
    with pytest.raises(DuplicateConnectionName):
        await connections.replace(connection("K4", name="ledger api"))


async def test_listing_and_fetching_several(connections: ConnectionStore) -> None:
    await connections.insert(connection("K1", name="zeta"))
    await connections.insert(connection("K2", name="Alpha"))
    await connections.insert(connection("K3", name="mid", owner=BOB))
    assert [c.id for c in await connections.list_by_owner(TEAM, ALICE)] == ["K2", "K1"]
    many = await connections.get_many(TEAM, ["K1", "K3", "K9"])
    assert sorted(c.id for c in many) == ["K1", "K3"]
    assert await connections.get_many(OTHER_TEAM, ["K1"]) == []


async def test_replace_and_delete(connections: ConnectionStore) -> None:
    await connections.insert(connection())
    await connections.replace(connection(base_url="https://new.example.com", updated_at=LATER))
    stored = await connections.get(TEAM, "K1")
    assert stored is not None and stored.base_url == "https://new.example.com"
    assert not await connections.delete(OTHER_TEAM, "K1")
    assert await connections.delete(TEAM, "K1")
    assert not await connections.delete(TEAM, "K1")


async def test_re_encryption_swaps_only_what_the_old_key_made(
    connections: ConnectionStore,
) -> None:
    await connections.insert(connection("K1", key_id="old"))
    await connections.insert(connection("K2", name="Two", key_id="new"))
    assert [c.id for c in await connections.stale_keys("new")] == ["K1"]
    assert await connections.set_ciphertext("K1", "old", "gAAAA-again", "new")
    # A racing rotation (or update) got there first: refused.
    assert not await connections.set_ciphertext("K1", "old", "gAAAA-late", "new")
    stored = await connections.get(TEAM, "K1")
    assert stored is not None and (stored.ciphertext, stored.key_id) == ("gAAAA-again", "new")
    assert await connections.stale_keys("new") == []


# ---------------------------------------------------------------- people and policy


async def test_the_welcome_is_remembered_per_person(users: UserStore) -> None:
    assert not await users.has_seen_welcome(TEAM, ALICE)
    await users.mark_welcome_seen(TEAM, ALICE, T0)
    await users.mark_welcome_seen(TEAM, ALICE, LATER)
    assert await users.has_seen_welcome(TEAM, ALICE)
    assert not await users.has_seen_welcome(OTHER_TEAM, ALICE)
    assert not await users.has_seen_welcome(TEAM, BOB)


async def test_the_policy_defaults_to_everyone(policies: PolicyStore) -> None:
    assert await policies.get(TEAM) == WorkspacePolicy(team_id=TEAM)
    policy = WorkspacePolicy(
        team_id=TEAM, creators=[ALICE, "S0LEADS"], updated_by=ALICE, updated_at=T0
    )
    await policies.put(policy)
    assert await policies.get(TEAM) == policy
    await policies.put(WorkspacePolicy(team_id=TEAM, creators=None, updated_by=BOB))
    assert (await policies.get(TEAM)).creators is None
    assert await policies.get(OTHER_TEAM) == WorkspacePolicy(team_id=OTHER_TEAM)


# ---------------------------------------------------------------- sharing


def entry(entry_id: str, at_minute: int, flow_id: str | None = "F1") -> AuditEntry:
    return AuditEntry(
        id=entry_id,
        team_id=TEAM,
        flow_id=flow_id,
        at=T0 + timedelta(minutes=at_minute),
        actor=ALICE,
        kind="shared",
        principal=BOB,
        role="runner",
    )


async def test_the_audit_trail_is_newest_first(audit: AuditStore) -> None:
    for record in (
        entry("E1", 0),
        entry("E2", 2),
        entry("E3", 1),
        entry("E4", 2),
        entry("E5", 5, flow_id="F2"),
    ):
        await audit.add(record)
    assert [e.id for e in await audit.for_flow(TEAM, "F1")] == ["E4", "E2", "E3", "E1"]
    assert [e.id for e in await audit.for_flow(TEAM, "F1", limit=2)] == ["E4", "E2"]
    assert await audit.for_flow(OTHER_TEAM, "F1") == []
    assert (await audit.for_flow(TEAM, "F2"))[0] == entry("E5", 5, flow_id="F2")


async def test_my_buttons_remember_what_each_person_did(buttons: ButtonStore) -> None:
    assert await buttons.states(TEAM, BOB) == {}
    await buttons.set_status(TEAM, BOB, "F1", "added", T0)
    await buttons.set_status(TEAM, BOB, "F1", "removed", LATER)
    await buttons.set_status(TEAM, BOB, "F2", "added", T0)
    await buttons.set_status(TEAM, CAROL, "F1", "removed", T0)
    states = await buttons.states(TEAM, BOB)
    assert {k: (v.status, v.updated_at) for k, v in states.items()} == {
        "F1": ("removed", LATER),
        "F2": ("added", T0),
    }
    # Shared again: a removed button becomes new; an added one stays.
    await buttons.forget(TEAM, "F1", [BOB, CAROL])
    await buttons.forget(TEAM, "F2", [BOB])
    await buttons.forget(TEAM, "F2", [])
    assert list(await buttons.states(TEAM, BOB)) == ["F2"]
    assert await buttons.states(TEAM, CAROL) == {}


def access_request(request_id: str = "Q1", requester: str = BOB) -> AccessRequest:
    return AccessRequest(
        id=request_id,
        team_id=TEAM,
        flow_id="F1",
        flow_name="Standup",
        requester=requester,
        created_at=T0,
    )


async def test_an_access_request_is_decided_once(access_requests: AccessRequestStore) -> None:
    await access_requests.create(access_request())
    assert await access_requests.get(TEAM, "Q1") == access_request()
    assert await access_requests.get(OTHER_TEAM, "Q1") is None
    assert await access_requests.pending(TEAM, "F1", BOB) == access_request()
    assert await access_requests.pending(TEAM, "F1", CAROL) is None
    await access_requests.add_message("Q1", MessageRef(channel="D1", ts="1.1"))
    await access_requests.add_message("Q1", MessageRef(channel="D2", ts="2.2"))
    decided = await access_requests.decide(TEAM, "Q1", "approved", ALICE, LATER)
    assert decided is not None
    assert (decided.status, decided.decided_by, decided.decided_at) == ("approved", ALICE, LATER)
    assert [m.channel for m in decided.messages] == ["D1", "D2"]
    assert await access_requests.decide(TEAM, "Q1", "denied", CAROL, LATER) is None
    assert await access_requests.pending(TEAM, "F1", BOB) is None
    assert await access_requests.decide(TEAM, "Q9", "denied", CAROL, LATER) is None
