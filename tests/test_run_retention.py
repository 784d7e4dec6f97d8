"""Run history has a retention (issue 20): finished runs expire after
`FLOWBOT_RUN_RETENTION` (default 30 days) through a TTL index on `finished_at`; a run
that has not finished has no `finished_at` and never expires."""

from __future__ import annotations

import os
from collections.abc import AsyncIterator
from datetime import timedelta
from typing import Any

import pytest
from motor.motor_asyncio import AsyncIOMotorClient, AsyncIOMotorDatabase

from bot.settings import SettingsError, load_settings
from storage.embedded import EmbeddedMongo
from storage.runs_repo import RETENTION_INDEX, MongoRunStore

Db = AsyncIOMotorDatabase[dict[str, Any]]


@pytest.fixture
async def db(mongo: EmbeddedMongo, db_name: str) -> AsyncIterator[Db]:
    uri = os.environ.get("FLOWBOT_TEST_MONGODB_URI") or mongo.uri
    client: AsyncIOMotorClient[dict[str, Any]] = AsyncIOMotorClient(uri, tz_aware=True)
    yield client[db_name]
    await client.drop_database(db_name)
    client.close()


async def ttl_of(db: Db) -> object:
    index = (await db["runs"].index_information()).get(RETENTION_INDEX)
    return None if index is None else (index["key"], index.get("expireAfterSeconds"))


async def test_finished_runs_expire_through_a_ttl_index_that_follows_the_setting(db: Db) -> None:
    await MongoRunStore(db, timedelta(days=30)).ensure_indexes()
    assert await ttl_of(db) == ([("finished_at", 1)], 30 * 86_400)
    # Started again with another retention: the index follows, in place.
    await MongoRunStore(db, timedelta(days=2)).ensure_indexes()
    assert await ttl_of(db) == ([("finished_at", 1)], 2 * 86_400)
    await MongoRunStore(db, timedelta(days=2)).ensure_indexes()  # unchanged: nothing to do
    assert await ttl_of(db) == ([("finished_at", 1)], 2 * 86_400)
    # A store made without a retention (tools, tests) keeps everything.
    await MongoRunStore(db).ensure_indexes()
    assert await ttl_of(db) is None


def test_the_retention_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("FLOWBOT_RUN_RETENTION", raising=False)
    assert load_settings().flowbot_run_retention == timedelta(days=30)
    monkeypatch.setenv("FLOWBOT_RUN_RETENTION", "14d")
    assert load_settings().flowbot_run_retention == timedelta(days=14)
    for wrong in ("soon", "10m"):
        monkeypatch.setenv("FLOWBOT_RUN_RETENTION", wrong)
        with pytest.raises(SettingsError, match="FLOWBOT_RUN_RETENTION"):
            load_settings()
