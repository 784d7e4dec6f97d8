"""The modal context store (issue 19): a context is found by its id only together with the
workspace, the person and the kind of modal it was made for."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

import pytest

from flows.modal_context import ModalContext, ModalContextStore
from flows.testing.memory.modal_contexts import MemoryModalContexts
from storage.modal_contexts_repo import MongoModalContexts
from tests.builders import ALICE, BOB, OTHER_TEAM, T0, TEAM
from tests.contract.conftest import _store


@pytest.fixture
async def modal_contexts(
    backend: str, motor_client: Any, db_name: str
) -> AsyncIterator[ModalContextStore]:
    async for store in _store(
        backend, motor_client, db_name, MemoryModalContexts, MongoModalContexts
    ):
        yield store


def context(**fields: Any) -> ModalContext:
    data: dict[str, Any] = {
        "id": "ctx1",
        "team_id": TEAM,
        "user_id": ALICE,
        "kind": "run",
        "created_at": T0,
        "response_url": "https://hooks.slack.test/commands/1",
        "data": {"flow": "F1", "channel": "C1"},
    }
    data.update(fields)
    return ModalContext(**data)


async def test_a_context_comes_back_as_it_was_put(modal_contexts: ModalContextStore) -> None:
    await modal_contexts.put(context())
    found = await modal_contexts.get("ctx1", TEAM, ALICE, "run")
    assert found == context()
    assert found is not None and found.created_at == T0


async def test_a_context_is_found_only_by_its_workspace_person_and_kind(
    modal_contexts: ModalContextStore,
) -> None:
    await modal_contexts.put(context())
    assert await modal_contexts.get("ctx1", OTHER_TEAM, ALICE, "run") is None
    assert await modal_contexts.get("ctx1", TEAM, BOB, "run") is None
    assert await modal_contexts.get("ctx1", TEAM, ALICE, "connection") is None
    assert await modal_contexts.get("ctx2", TEAM, ALICE, "run") is None


async def test_an_id_is_used_once(modal_contexts: ModalContextStore) -> None:
    await modal_contexts.put(context())
    with pytest.raises(Exception):  # noqa: B017 - DuplicateKeyError or ValueError
        await modal_contexts.put(context(user_id=BOB))
    assert await modal_contexts.get("ctx1", TEAM, BOB, "run") is None
