"""A pool process forked after the worker's start-up repair built an HNSW index can still run FAISS.

An HNSW build starts FAISS's OpenMP threads in the process that runs it, and a process forked from one
holding them hangs at its first parallel FAISS call. The start-up repair runs when the worker's
parent has already forked its pool, but the parent forks again whenever a pool process dies (killed
at its time limit, say): the replacement must not inherit those threads.

Runs a real worker (prefork pool, as `make worker`) on the real PostgreSQL and Redis named by
DATABASE_URL and REDIS_URL (as `.ci/run` sets them), on a queue of its own.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.conf import settings
from django.utils import timezone

from catalog.models import Photo
from recognition.index_store import IndexStore
from recognition.services import EMBEDDING_DIM
from tests.e2e.workers import NEEDS_POSTGRES_AND_REDIS, worker_environment

pytestmark = NEEDS_POSTGRES_AND_REDIS

ROOT = Path(__file__).resolve().parents[2]
START_WAIT_S = 180  # torch import and model load on a busy 2-core machine
REBUILD_WAIT_S = 90  # a rebuild of these photos takes about a second; a hung one never ends
PHOTOS = 320


def wait_for(condition, *, timeout_s: float, what: str) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, f"timed out waiting for {what}"
        time.sleep(0.2)


def pool_processes(worker: subprocess.Popen) -> list[int]:
    found = subprocess.run(["pgrep", "-P", str(worker.pid)], capture_output=True, text=True).stdout.split()
    return [int(pid) for pid in found]


@pytest.mark.django_db(transaction=True)
def test_a_pool_process_forked_after_the_start_up_repair_can_build_an_hnsw_index(
    tagged_catalog, queue, tmp_path
):
    from catalog.tasks import rebuild_index

    # given 320 tagged photos (FAISS builds a graph in parallel from a hundred vectors on) and an index
    # folder that the worker's start-up repair must rebuild, as HNSW (past a flat limit of 5)
    photos = list(Photo.objects.all())
    Photo.objects.bulk_create(
        Photo(item=photo.item, image=photo.image.name, status=Photo.Status.TAGGED, embedding=photo.embedding,
              embedding_model=photo.embedding_model, tagged_at=timezone.now())
        for photo in photos * (PHOTOS // len(photos) - 1)
    )
    assert Photo.objects.filter(status=Photo.Status.TAGGED).count() == PHOTOS
    shutil.rmtree(settings.INDEX_DIR, ignore_errors=True)
    store = IndexStore(settings.INDEX_DIR, EMBEDDING_DIM)
    env = worker_environment() | {"FLAT_INDEX_MAX_ITEMS": "5", "RECOGNITION_THREADS": "1"}
    log_path = tmp_path / "worker.log"
    with log_path.open("w") as log:
        worker = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "fashion_search", "worker", "-Q", queue,
             "--concurrency=1", "--loglevel=INFO", "-n", f"fork-{queue}@%h"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )
    try:
        wait_for(lambda: store.current_version() != "", timeout_s=START_WAIT_S, what="the start-up repair")
        assert store.load().kind == "hnsw" and len(store.load()) == PHOTOS
        wait_for(lambda: len(pool_processes(worker)) == 1, timeout_s=30, what="the pool process alone")

        # when its pool process dies, and the parent forks a new one
        (first,) = pool_processes(worker)
        os.kill(first, signal.SIGKILL)
        wait_for(
            lambda: pool_processes(worker) not in ([], [first]), timeout_s=30, what="a new pool process"
        )

        # then the new pool process builds an HNSW index (FAISS's parallel build) and publishes it
        version = store.current_version()
        rebuild_index.apply_async(queue=queue)
        wait_for(lambda: store.current_version() != version, timeout_s=REBUILD_WAIT_S, what="the rebuild")
        assert store.load().kind == "hnsw" and len(store.load()) == PHOTOS
    finally:
        os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        print(log_path.read_text()[-4000:])
