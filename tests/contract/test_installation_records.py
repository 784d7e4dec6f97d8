"""Installations and OAuth states (many workspaces): the in-memory twin and MongoDB."""

from __future__ import annotations

from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest

from flows.testing.installations import MemoryInstallationRecords
from flows.workspace_context import InstallationRecords
from storage.installations_repo import InstallationsRepo
from tests.contract.conftest import _store


@pytest.fixture
async def records(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, MemoryInstallationRecords, InstallationsRepo
    ):
        yield store


async def test_bots_are_saved_replaced_found_and_deleted(records: InstallationRecords) -> None:
    assert await records.find_bot("-:T1") is None
    await records.save_bot("-:T1", "one")
    await records.save_bot("-:T1", "two")
    await records.save_bot("-:T2", "other")
    assert await records.find_bot("-:T1") == "two"
    await records.delete_bot("-:T1")
    assert await records.find_bot("-:T1") is None
    assert await records.find_bot("-:T2") == "other"


async def test_installations_per_installer_and_latest(records: InstallationRecords) -> None:
    await records.save_installation("-:T1", None, "latest")
    await records.save_installation("-:T1", "U1", "by U1")
    await records.save_installation("-:T1", "U2", "by U2")
    await records.save_installation("-:T2", None, "other")
    assert await records.find_installation("-:T1", None) == "latest"
    assert await records.find_installation("-:T1", "U1") == "by U1"
    await records.delete_installations("-:T1", "U1")
    assert await records.find_installation("-:T1", "U1") is None
    assert await records.find_installation("-:T1", "U2") == "by U2"
    await records.delete_installations("-:T1", None)
    assert await records.find_installation("-:T1", None) is None
    assert await records.find_installation("-:T1", "U2") is None
    assert await records.find_installation("-:T2", None) == "other"


async def test_a_state_is_consumed_once_and_not_after_it_expires(
    records: InstallationRecords,
) -> None:
    # Real time: MongoDB's TTL monitor may remove a state whose expiry has passed.
    T0 = datetime.now(UTC)
    await records.issue_state("s1", T0 + timedelta(minutes=10))
    await records.issue_state("s2", T0 + timedelta(minutes=10))
    with pytest.raises(ValueError):
        await records.issue_state("s1", T0 + timedelta(minutes=10))
    assert await records.consume_state("s1", T0 + timedelta(minutes=1))
    assert not await records.consume_state("s1", T0 + timedelta(minutes=1))
    assert not await records.consume_state("s2", T0 + timedelta(minutes=11))
    assert not await records.consume_state("never", T0)
