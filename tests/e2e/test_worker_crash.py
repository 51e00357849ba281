"""A Celery worker killed (SIGKILL) in the middle of tagging loses no task and repeats none.

Runs real worker processes on the real PostgreSQL and Redis named by DATABASE_URL and REDIS_URL (as
`.ci/run` sets them), each on a queue of its own. Two crashes:

- the whole worker (parent and pool) is killed while it holds a message it has not acknowledged; a
  new worker gets that message back from the broker once the visibility timeout has passed
  (shortened here through CELERY_BROKER_VISIBILITY_TIMEOUT; with kombu's default of 1 h the photo
  stayed pending, checked by hand) and finishes the work;
- only the pool process running the task is killed; the worker rejects the message back to the
  queue at once (task_reject_on_worker_lost) and a fresh pool process tags the photo.

The kill comes once some photos are tagged and the worker holds the message of one that is not,
read from the broker's own record of unacknowledged messages, so no test-only hook slows tagging.
"""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import IO

import pytest
from django.conf import settings
from django.core.files.base import ContentFile

from catalog.models import Item, Photo, Tag
from recognition.index_store import IndexStore
from recognition.services import EMBEDDING_DIM
from tests.conftest import demo_photos
from tests.e2e.workers import NEEDS_POSTGRES_AND_REDIS, UNACKED_KEY, worker_environment

pytestmark = NEEDS_POSTGRES_AND_REDIS

ROOT = Path(__file__).resolve().parents[2]
PHOTOS = 8
VISIBILITY_TIMEOUT_S = 15  # how long the broker waits before handing a dead worker's message out again
RESTORE_INTERVAL_S = 2
WAIT_S = 240  # two worker start-ups (torch import, model load) on a busy 2-core machine, plus the timeout


@pytest.fixture
def start_worker(queue: str, tmp_path: Path) -> Iterator[Callable[..., subprocess.Popen]]:
    """Start `celery worker` processes (prefork pool, as `make worker`) in their own process groups."""
    env = worker_environment() | {
        "CELERY_BROKER_RESTORE_INTERVAL": str(RESTORE_INTERVAL_S),
        "RECOGNITION_THREADS": "1",
    }
    started: list[tuple[subprocess.Popen, Path, IO[str]]] = []

    def start(name: str, visibility_timeout_s: int = VISIBILITY_TIMEOUT_S) -> subprocess.Popen:
        log = tmp_path / f"{name}.log"
        handle = log.open("w")
        process = subprocess.Popen(
            [sys.executable, "-m", "celery", "-A", "fashion_search", "worker", "-Q", queue,
             "--concurrency=1", "--loglevel=INFO", "-n", f"{name}-{queue}@%h"],
            cwd=ROOT, env=env | {"CELERY_BROKER_VISIBILITY_TIMEOUT": str(visibility_timeout_s)},
            stdout=handle, stderr=subprocess.STDOUT, start_new_session=True,
        )
        started.append((process, log, handle))
        return process

    yield start
    for process, log, handle in started:
        if process.poll() is None:
            os.killpg(process.pid, signal.SIGTERM)
            try:
                process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
        handle.close()
        print(f"--- {log.name}\n{log.read_text()[-3000:]}")


def unacked_photo_ids(queue: str) -> list[int]:
    """Photo ids of the tagging messages of `queue` that a worker took and has not acknowledged."""
    import redis

    ids = []
    for raw in redis.Redis.from_url(os.environ["REDIS_URL"]).hvals(UNACKED_KEY):
        message, _exchange, routing_key = json.loads(raw)
        # The queue also carries the index syncs that tagging queues (no photo id): skip them.
        if routing_key == queue and message["headers"]["task"] == "catalog.tasks.tag_photo":
            args, _kwargs, _embed = json.loads(base64.b64decode(message["body"]))
            ids.append(args[0])
    return ids


def wait_until(condition: Callable[[], bool], *, timeout_s: float, poll_s: float = 0.1) -> None:
    deadline = time.monotonic() + timeout_s
    while not condition():
        assert time.monotonic() < deadline, "timed out"
        time.sleep(poll_s)


def tagged_at() -> dict[int, object]:
    return dict(Photo.objects.filter(status=Photo.Status.TAGGED).values_list("pk", "tagged_at"))


def photos_with_queued_tasks(queue: str) -> list[int]:
    """Photos whose tagging tasks wait in `queue`, committed (the worker is another process)."""
    from catalog.tasks import tag_photo

    item = Item.objects.create(name="Crash-tested coat", shop_url="https://shop.example/crash")
    photo_ids = []
    for source in demo_photos(per_type=1)[:PHOTOS]:
        photo = Photo(item=item)
        photo.image.save(source.name, ContentFile(source.read_bytes()), save=True)
        photo_ids.append(photo.pk)
    for photo_id in photo_ids:
        tag_photo.apply_async((photo_id, False), queue=queue)
    return photo_ids


def wait_until_tagging_after_some_done(queue: str) -> set[int]:
    """Wait until some photos are tagged and the worker holds the message of one that is not yet."""
    holding: set[int] = set()

    def mid_tagging() -> bool:
        holding.clear()
        done = tagged_at()
        holding.update(set(unacked_photo_ids(queue)) - set(done))
        return bool(done) and bool(holding)

    wait_until(mid_tagging, timeout_s=WAIT_S, poll_s=0.02)
    return set(holding)


def assert_every_photo_tagged_once(photo_ids: list[int]) -> None:
    for photo_id in photo_ids:
        tags = list(Tag.objects.filter(photo_id=photo_id).values_list("attribute", "value"))
        assert tags and len(tags) == len(set(tags)), f"photo {photo_id}: {tags}"
        assert Tag.objects.filter(photo_id=photo_id, attribute="type").exists()
    indexed = indexed_ids()
    assert sorted(indexed) == sorted(photo_ids), "the index holds each photo exactly once"


def indexed_ids() -> list[int]:
    return IndexStore(settings.INDEX_DIR, EMBEDDING_DIM).load().ids().tolist()


def all_tagged_and_indexed(queue: str) -> bool:
    """Every photo tagged, every tagging acknowledged, and the index caught up (its sync runs shortly after)."""
    return len(tagged_at()) == PHOTOS and not unacked_photo_ids(queue) and len(indexed_ids()) >= PHOTOS


@pytest.mark.django_db(transaction=True)
def test_a_worker_killed_mid_tagging_loses_no_task_and_every_photo_ends_tagged_once(queue, start_worker):
    # given photos whose tagging tasks wait in the broker
    photo_ids = photos_with_queued_tasks(queue)

    # when a worker is killed, with its pool, after tagging some photos and while tagging another
    first = start_worker("first")
    wait_until_tagging_after_some_done(queue)
    os.killpg(first.pid, signal.SIGKILL)
    first.wait(timeout=30)
    in_flight = unacked_photo_ids(queue)
    done_before_kill = {pk: at for pk, at in tagged_at().items() if pk not in in_flight}
    assert in_flight, "the worker was killed holding no message; nothing was tested"
    assert len(done_before_kill) < PHOTOS

    # and a new worker starts
    start_worker("second")

    # then every photo ends tagged and every message acknowledged
    wait_until(lambda: all_tagged_and_indexed(queue), timeout_s=WAIT_S, poll_s=0.5)
    # photos done before the crash were not tagged again: no task ran twice but the interrupted one
    assert {pk: at for pk, at in tagged_at().items() if pk in done_before_kill} == done_before_kill
    # each photo has one set of tags (no duplicated rows) and the index holds each photo once
    assert_every_photo_tagged_once(photo_ids)


@pytest.mark.django_db(transaction=True)
def test_a_pool_process_killed_mid_tagging_has_its_task_requeued_at_once(queue, start_worker):
    # given photos whose tagging tasks wait in the broker, and a worker tagging them; with kombu's
    # default visibility timeout (1 h) the broker itself would not hand a message out again in time
    photo_ids = photos_with_queued_tasks(queue)
    worker = start_worker("pool", visibility_timeout_s=3600)
    holding = wait_until_tagging_after_some_done(queue)

    # when only the pool process running the task is killed (out of memory, say)
    children = Path(f"/proc/{worker.pid}/task/{worker.pid}/children").read_text().split()
    assert len(children) == 1, children
    os.kill(int(children[0]), signal.SIGKILL)

    # then the worker rejects the message back to the queue (task_reject_on_worker_lost) instead of
    # acknowledging it, a new pool process takes it without waiting for the visibility timeout,
    # and every photo ends tagged once
    wait_until(lambda: all_tagged_and_indexed(queue), timeout_s=WAIT_S, poll_s=0.5)
    assert holding <= set(tagged_at())
    assert_every_photo_tagged_once(photo_ids)
    assert worker.poll() is None, "the worker itself survived"
