"""The layout issue 12 promised, checked on every run: small files, simple functions,
permission decisions made in `flows` only."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest
from radon.complexity import cc_visit

ROOT = Path(__file__).resolve().parent.parent
PRODUCT = ("bot", "flows", "handlers", "adapters", "storage", "cards")
MAX_LINES = 700
MAX_COMPLEXITY = 15


def _sources() -> list[Path]:
    return sorted(path for room in PRODUCT for path in (ROOT / room).rglob("*.py"))


def test_no_product_file_is_over_700_lines() -> None:
    long = {
        str(path.relative_to(ROOT)): count
        for path in _sources()
        if (count := len(path.read_text().splitlines())) > MAX_LINES
    }
    assert long == {}


def test_no_function_is_more_complex_than_15() -> None:
    complex_blocks = {
        f"{path.relative_to(ROOT)}:{block.lineno} {block.name}": block.complexity
        for path in _sources()
        for block in cc_visit(path.read_text())
        # A class's figure is its methods' (checked one by one), not a block of its own.
        if type(block).__name__ == "Function" and block.complexity > MAX_COMPLEXITY
    }
    assert complex_blocks == {}


_PERMISSION_NAMES = {"resolve_access", "allowed", "can", "granted", "may_view_run"}


@pytest.mark.parametrize("path", sorted((ROOT / "handlers").rglob("*.py")), ids=str)
def test_handlers_make_no_permission_decision(path: Path) -> None:
    tree = ast.parse(path.read_text())
    imported = [
        (node.module, alias.name)
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom)
        for alias in node.names
        if node.module == "flows.permissions"
        and (alias.name in _PERMISSION_NAMES or alias.name.startswith("may_"))
    ]
    assert imported == []
