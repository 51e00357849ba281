"""A worker's start-up repair runs in a child process: it forgets the queued sync first, and a stop ends it."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path
from types import SimpleNamespace

import pytest
from celery.apps.worker import install_worker_term_handler
from celery.worker import state as worker_state

from catalog.services import index as index_service
from fashion_search import celery as worker_start
from tests.conftest import embedded_environment

ROOT = Path(__file__).resolve().parent.parent
REPAIR_S = 30.0  # far longer than any test waits: the repair must be cut short, not finish


@pytest.fixture
def slow_repair(monkeypatch, tmp_path: Path) -> Path:
    """A repair that takes REPAIR_S and then writes a file (in the forked child); returns the file's path."""
    finished = tmp_path / "repair-finished"

    def repair() -> index_service.IndexRepair:
        time.sleep(REPAIR_S)
        finished.write_text("done")
        return index_service.IndexRepair()

    monkeypatch.setattr(index_service, "index_repair", repair)
    monkeypatch.setattr(index_service, "index_sync_queue_forget", lambda: None)
    monkeypatch.setattr("fashion_search.database.migrations_unapplied", lambda: [])  # no database here
    return finished


@pytest.fixture
def celery_stop_handler():
    """The TERM handler `celery worker` installs in its main process, and its state reset afterwards."""
    previous = signal.getsignal(signal.SIGTERM)
    install_worker_term_handler(SimpleNamespace(hostname="test-worker"))
    yield
    signal.signal(signal.SIGTERM, previous)
    worker_state.should_stop = worker_state.should_terminate = None


def children_of_this_process() -> set[int]:
    tasks = Path(f"/proc/{os.getpid()}/task/{os.getpid()}/children")
    return {int(pid) for pid in tasks.read_text().split()}


def test_a_worker_told_to_stop_while_it_repairs_cuts_the_repair_short(slow_repair, celery_stop_handler):
    # given a repair that would take 30 s, and a TERM to the worker (a supervisor's stop) half a second in
    others = children_of_this_process()  # other tests' (a session's worker process, say)
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()

    # when the worker starts
    started = time.monotonic()
    worker_start.index_repair_on_worker_start()

    # then it stops waiting within a few polls, and the repair child was ended, not left to finish
    assert time.monotonic() - started < 10
    assert worker_state.should_stop is not None
    assert children_of_this_process() <= others and not slow_repair.exists()


def test_a_stop_signal_sent_to_the_repair_child_ends_it(slow_repair, celery_stop_handler, caplog):
    # given a repair that would take 30 s, in a child forked from a worker with Celery's handlers
    others = children_of_this_process()  # other tests' (a session's worker process, say)

    def term_the_child() -> None:
        deadline = time.monotonic() + 10
        while not children_of_this_process() - others and time.monotonic() < deadline:
            time.sleep(0.05)
        time.sleep(0.3)  # past the child's own signal set-up
        for pid in children_of_this_process() - others:
            os.kill(pid, signal.SIGTERM)  # as `kill` of the process group does on Ctrl-C

    threading.Thread(target=term_the_child).start()

    # when the worker starts
    started = time.monotonic()
    worker_start.index_repair_on_worker_start()

    # then the child died of the signal instead of noting it and repairing on, and the worker said so
    assert time.monotonic() - started < 10 and not slow_repair.exists()
    assert "exited with status -15" in caplog.text
    assert worker_state.should_stop is None  # the worker itself was not told to stop


@pytest.mark.django_db
def test_the_queued_sync_is_forgotten_before_the_repair_reads_the_catalog(monkeypatch):
    # given a sync marked queued by a worker that died
    from recognition.services import index_store_get

    store = index_store_get()
    store.sync_queue_mark()
    marked_during_repair: list[bool] = []
    real_repair = index_service.index_repair

    def repair_noting_the_mark() -> index_service.IndexRepair:
        marked_during_repair.append(store.sync_queued(within_s=index_service.SYNC_QUEUED_STALE_S))
        return real_repair()

    monkeypatch.setattr(index_service, "index_repair", repair_noting_the_mark)
    monkeypatch.setattr("django.db.connection.close", lambda: None)  # this test's connection stays open

    # when the start-up repair runs (in this process, as the child would, which resets its signal handlers)
    handlers = {number: signal.getsignal(number) for number in (signal.SIGTERM, signal.SIGINT)}
    try:
        worker_start._index_repair_logged()
    finally:
        for number, handler in handlers.items():
            signal.signal(number, handler)

    # then the mark was gone before the repair read anything: a tagging from then on queues its own sync
    assert marked_during_repair == [False]


def test_a_worker_started_before_migrate_skips_the_repair_with_a_one_line_warning(tmp_path):
    # given a database with no tables yet (the README starts a worker before `make serve` migrates)
    code = "from fashion_search.celery import _index_repair_logged; _index_repair_logged()"

    # when the start-up repair runs (in this subprocess, as in the worker's child)
    result = subprocess.run(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code],
        cwd=ROOT, env=embedded_environment(tmp_path), text=True, capture_output=True, timeout=120,
    )

    # then it says what to do, instead of a traceback about a missing table, and builds no index
    assert result.returncode == 0, result.stderr
    assert "index repair on worker start skipped" in result.stderr
    assert "unapplied migration(s) for" in result.stderr and "run `manage.py migrate`" in result.stderr
    assert "Traceback" not in result.stderr
    assert not (tmp_path / "index").exists()
