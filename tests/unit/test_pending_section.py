"""The App Home's pending sections show the first few and count the rest (`total`)."""

from __future__ import annotations

from typing import Any

from cards import approvals as cards
from tests.builders import approval_record


def texts(blocks: list[dict[str, Any]]) -> list[str]:
    return [e.get("text", "") for b in blocks if b["type"] == "context" for e in b["elements"]]


def test_a_page_with_its_total_counts_the_ones_not_shown() -> None:
    page = [approval_record(f"A{n}", run_id=f"R{n}") for n in range(cards.LIST_LIMIT)]
    blocks = cards.pending_approvals_blocks(page, 50)
    assert any(t.startswith(f"…and {50 - cards.LIST_LIMIT} more") for t in texts(blocks))


def test_without_a_total_the_records_are_all_there_are() -> None:
    few = [approval_record(f"A{n}", run_id=f"R{n}") for n in range(3)]
    assert not any("more" in t for t in texts(cards.pending_approvals_blocks(few)))
    assert cards.pending_approvals_blocks([], 0) == []
