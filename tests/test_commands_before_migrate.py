"""A command run on a database that is not migrated, or not there, says so in one line and does no work."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import embedded_environment

ROOT = Path(__file__).resolve().parent.parent
COMMANDS = [
    ["repair_index"],
    ["rebuild_index"],
    ["mark_best_tags"],
    ["retag", "--limit", "1"],
    ["setup_demo"],
    ["import_catalog", "catalog-folder"],
    ["evaluate_search", "eval-folder"],
    ["train_recognizer", "type", "--data", "train-folder"],
    ["evaluate_recognizer", "type", "eval-folder"],
]


def manage(*args: str, var_dir: Path, database_url: str | None = None) -> subprocess.CompletedProcess[str]:
    env = embedded_environment(var_dir)
    if database_url:
        env["DATABASE_URL"] = database_url
    return subprocess.run(
        [sys.executable, "manage.py", *args], cwd=ROOT, env=env, text=True, capture_output=True, timeout=120
    )


@pytest.mark.parametrize("command", COMMANDS, ids=lambda command: command[0])
def test_a_command_before_migrate_says_to_run_migrate(tmp_path, command):
    result = manage(*command, var_dir=tmp_path)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "unapplied migration" in result.stderr
    assert "run `python manage.py migrate` first" in result.stderr
    assert not (tmp_path / "index").exists()  # nothing was built or written before the refusal


def test_a_command_after_migrate_runs(tmp_path):
    assert manage("migrate", "--noinput", var_dir=tmp_path).returncode == 0
    result = manage("repair_index", var_dir=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "migrate" not in result.stderr


def test_a_database_that_cannot_be_reached_is_named_without_its_password(tmp_path):
    # a port where nothing listens: 1 is reserved (tcpmux) and closed on any test machine
    result = manage("repair_index", var_dir=tmp_path, database_url="postgres://shop:s3cret@127.0.0.1:1/shop")
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    assert "cannot reach the database (postgresql shop on 127.0.0.1:1)" in result.stderr
    assert "s3cret" not in result.stderr
