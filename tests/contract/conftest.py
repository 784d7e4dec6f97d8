"""Contract tests: each storage port's behaviour, tested once and run against both of its
implementations, the in-memory one (`flows.testing.memory`) and the MongoDB one
(`storage/`, on the embedded server of tests/conftest.py). A test that passes for one and
fails for the other has found a real difference between them."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator, Callable
from typing import Any, TypeVar

import pytest
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase

from flows.testing import memory
from storage.alerts_repo import MongoFailureStreaks
from storage.approvals_repo import ApprovalsRepo
from storage.asks_repo import AsksRepo
from storage.audit_repo import AuditRepo
from storage.buttons_repo import AccessRequestRepo, ButtonsRepo
from storage.connections_repo import ConnectionsRepo
from storage.embedded import EmbeddedMongo
from storage.flows_repo import MongoFlowStore
from storage.runs_repo import MongoRunStore
from storage.schedules_repo import MongoScheduleStore
from storage.trigger_log_repo import MongoTriggerLog
from storage.users_repo import MongoUserStore
from storage.workspace_repo import WorkspaceRepo

Db = AsyncIOMotorDatabase[dict[str, Any]]
Store = TypeVar("Store")


@pytest.fixture(scope="session")
async def motor_client(mongo: EmbeddedMongo) -> AsyncIterator[AsyncIOMotorClient[Any]]:
    """One client for the whole session (a client per test would cost a handshake each)."""
    uri = os.environ.get("FLOWBOT_TEST_MONGODB_URI") or mongo.uri
    client: AsyncIOMotorClient[Any] = AsyncIOMotorClient(uri, tz_aware=True)
    yield client
    client.close()


@pytest.fixture(params=["memory", "mongo"])
def backend(request: pytest.FixtureRequest) -> str:
    return str(request.param)


async def _store(
    backend: str,
    client: AsyncIOMotorClient[Any],
    db_name: str,
    in_memory: Callable[[], Store],
    on_mongo: Callable[[Db], Any],
) -> AsyncIterator[Store]:
    if backend == "memory":
        yield in_memory()
        return
    store = on_mongo(client[db_name])
    await store.ensure_indexes()
    yield store
    await client.drop_database(db_name)


# Each fixture below is one port, parametrized over both backends by `backend`.


@pytest.fixture
async def runs(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(backend, motor_client, db_name, memory.MemoryRunStore, MongoRunStore):
        yield store


@pytest.fixture
async def flows(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryFlowStore, MongoFlowStore
    ):
        yield store


@pytest.fixture
async def users(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryUserStore, MongoUserStore
    ):
        yield store


@pytest.fixture
async def approvals(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryApprovalStore, ApprovalsRepo
    ):
        yield store


@pytest.fixture
async def schedules(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryScheduleStore, MongoScheduleStore
    ):
        yield store


@pytest.fixture
async def connections(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryConnectionStore, ConnectionsRepo
    ):
        yield store


@pytest.fixture
async def audit(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(backend, motor_client, db_name, memory.MemoryAuditStore, AuditRepo):
        yield store


@pytest.fixture
async def buttons(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryButtonStore, ButtonsRepo
    ):
        yield store


@pytest.fixture
async def access_requests(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryAccessRequestStore, AccessRequestRepo
    ):
        yield store


@pytest.fixture
async def policies(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryPolicyStore, WorkspaceRepo
    ):
        yield store


@pytest.fixture
async def asks(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(backend, motor_client, db_name, memory.MemoryAskStore, AsksRepo):
        yield store


@pytest.fixture
async def trigger_log(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryTriggerLog, MongoTriggerLog
    ):
        yield store


@pytest.fixture
async def failure_streaks(backend: str, motor_client: Any, db_name: str) -> AsyncIterator[Any]:
    async for store in _store(
        backend, motor_client, db_name, memory.MemoryFailureStreaks, MongoFailureStreaks
    ):
        yield store
