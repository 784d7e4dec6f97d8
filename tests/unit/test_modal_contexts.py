"""`flows.modal_context.ModalContexts`: what a modal's metadata may name (issue 19)."""

from __future__ import annotations

from datetime import timedelta

from flows.modal_context import KEEP, ModalContexts
from flows.testing.fakes import FakeClock
from flows.testing.memory.modal_contexts import MemoryModalContexts

TEAM, OTHER, ALICE, BOB = "T0TEAM", "T0OTHER", "U0ALICE", "U0BOB"
URL = "https://hooks.slack.test/commands/1"


async def test_a_context_is_found_by_its_id_workspace_person_and_kind_for_a_day() -> None:
    clock = FakeClock()
    contexts = ModalContexts(MemoryModalContexts(), clock)
    context_id = await contexts.open(TEAM, ALICE, "run", URL, flow="F1", channel=None)
    assert len(context_id) >= 24 and URL not in context_id

    found = await contexts.find(context_id, TEAM, ALICE, "run")
    assert found is not None and found.response_url == URL and found.data == {"flow": "F1"}
    for metadata, team, user, kind in [
        (context_id, OTHER, ALICE, "run"),
        (context_id, TEAM, BOB, "run"),
        (context_id, TEAM, ALICE, "connection"),
        ("", TEAM, ALICE, "run"),
        (None, TEAM, ALICE, "run"),
        ({"c": context_id}, TEAM, ALICE, "run"),
        (context_id, "", ALICE, "run"),
        ("x" * 100, TEAM, ALICE, "run"),
    ]:
        assert await contexts.find(metadata, team, user, kind) is None, (metadata, team, user)

    clock.advance(KEEP + timedelta(seconds=1))
    assert await contexts.find(context_id, TEAM, ALICE, "run") is None


async def test_ids_are_unguessable_and_distinct() -> None:
    contexts = ModalContexts(MemoryModalContexts(), FakeClock())
    ids = {await contexts.open(TEAM, ALICE, "run") for _ in range(50)}
    assert len(ids) == 50
