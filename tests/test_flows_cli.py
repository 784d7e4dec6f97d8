"""`python -m bot flows import|export`: flows as code, against the test database."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pymongo import MongoClient

from flows.definition import parse_definition
from tests.support import ALICE, BOB, ROOT, TEAM, bot_env, template_source

EXPENSE = template_source("expense-approval")


@pytest.fixture
def run_cli(mongo_uri: str, db_name: str, tmp_path: Path) -> Any:
    env = bot_env(
        MONGODB_URI=mongo_uri, MONGODB_DB=db_name, FLOWBOT_DATA_DIR=str(tmp_path / "data")
    )

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-m", "bot", "flows", *args],
            env=env,
            cwd=ROOT,
            capture_output=True,
            text=True,
            timeout=90,
        )

    return run


@pytest.fixture
def db(mongo_uri: str, db_name: str) -> Iterator[Any]:
    client: MongoClient[dict[str, Any]] = MongoClient(mongo_uri)
    yield client[db_name]
    client.close()


def test_import_creates_then_updates_as_a_new_version(
    run_cli: Any, db: Any, tmp_path: Path
) -> None:
    path = tmp_path / "expense.yaml"
    path.write_text(EXPENSE)
    first = run_cli("import", str(path), "--team", TEAM, "--user", ALICE)
    assert first.returncode == 0, first.stderr
    assert "created flow 'Expense approval'" in first.stderr and "version 1" in first.stderr

    path.write_text(EXPENSE.replace("timeout: 2d", "timeout: 3d"))
    second = run_cli("import", str(path), "--team", TEAM, "--user", ALICE)
    assert second.returncode == 0, second.stderr
    assert "updated" in second.stderr and "version 2" in second.stderr

    doc = db["flows"].find_one({"name_key": "expense approval"})
    assert doc["version"] == 2 and doc["creator"] == ALICE
    assert db["flow_versions"].count_documents({"flow_id": doc["_id"]}) == 1

    exported = run_cli("export", "EXPENSE approval", "--team", TEAM)
    assert exported.returncode == 0, exported.stderr
    definition = parse_definition(exported.stdout)
    assert definition == parse_definition(EXPENSE.replace("timeout: 2d", "timeout: 3d"))


def test_a_bad_file_prints_every_error_and_saves_nothing(
    run_cli: Any, db: Any, tmp_path: Path
) -> None:
    path = tmp_path / "bad.yaml"
    path.write_text("name: Bad\nsteps:\n  - {type: teleport}\n  - {type: post_message}\n")
    result = run_cli("import", str(path), "--team", TEAM, "--user", ALICE)
    assert result.returncode == 1
    assert "steps[0].type: unknown step type 'teleport'" in result.stderr
    assert "steps[1].channel: field required" in result.stderr
    assert "Traceback" not in result.stderr
    assert db["flows"].count_documents({}) == 0


def test_someone_who_is_not_an_owner_cannot_overwrite(
    run_cli: Any, db: Any, tmp_path: Path
) -> None:
    path = tmp_path / "expense.yaml"
    path.write_text(EXPENSE)
    assert run_cli("import", str(path), "--team", TEAM, "--user", ALICE).returncode == 0
    refused = run_cli("import", str(path), "--team", TEAM, "--user", BOB)
    assert refused.returncode == 1 and "can't edit" in refused.stderr
    assert db["flows"].find_one({})["version"] == 1


def test_export_of_an_unknown_flow_and_bad_arguments(run_cli: Any, tmp_path: Path) -> None:
    missing = run_cli("export", "Nope", "--team", TEAM)
    assert missing.returncode == 1 and "no flow named" in missing.stderr
    usage = run_cli("export", "Nope")
    assert usage.returncode == 2 and "--team" in usage.stderr
    unreadable = run_cli("import", str(tmp_path / "missing.yaml"), "--team", TEAM, "--user", ALICE)
    assert unreadable.returncode == 1 and "cannot read" in unreadable.stderr
