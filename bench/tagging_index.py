"""Tagging into a large catalog: how long until newly tagged photos are searchable.

    .venv/bin/python bench/tagging_index.py [--photos 40] [--items 100000]

Set-up: the 100k-item PostgreSQL catalog of bench/http_search.py (created the same way when missing).
The newest `--photos` photos are set back to pending and dropped from the index; then a real Celery
worker (prefork, concurrency 1, as `make worker`) on its own Redis database and queue tags them, one
`tag_photo` task each, as the admin queues them. Measured from sending the tasks: when every photo is
tagged, and when the first, half and all of them are in the published index (the worker syncs after
a tagging once its last sync is long enough ago, catalog.services.index.index_sync_soon, so that the
photos tagged meanwhile share one publish). The photos keep their new embeddings (of the bench's one
photo file), so the catalog stays complete for the next run. A benchmark: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from environment import machine_line, table  # noqa: E402
from http_search import catalog_open  # noqa: E402

REDIS_URL = "redis://127.0.0.1:6379/6"
WORKER_START_S = 60.0
TIME_LIMIT_S = 600.0


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench-100k")
    args = parser.parse_args(argv)

    print(f"Machine: {machine_line()}\n", flush=True)
    catalog_open(
        items=args.items, var_dir=args.var_dir,
        LOG_LEVEL="WARNING", REDIS_URL=REDIS_URL, CELERY_TASK_ALWAYS_EAGER="0",
    )
    from django.conf import settings

    from catalog.models import Photo
    from catalog.services.index import index_sync
    from catalog.tasks import tag_photo
    from recognition.services import index_store_get

    photo_ids = list(Photo.objects.order_by("-pk").values_list("pk", flat=True)[: args.photos])
    Photo.objects.filter(pk__in=photo_ids).update(status=Photo.Status.PENDING, embedding=None)
    index_sync()  # drops them from the published index

    def indexed() -> set[int]:
        return set(index_store_get().load().ids().tolist())

    queue = f"bench-tagging-{uuid.uuid4().hex[:8]}"
    worker = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "fashion_search", "worker", "-Q", queue,
         "--concurrency=1", "--loglevel=WARNING"],
        cwd=ROOT, env=os.environ.copy(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        from fashion_search.celery import app

        deadline = time.monotonic() + WORKER_START_S
        while not app.control.ping(timeout=1.0) and time.monotonic() < deadline:
            time.sleep(0.5)
        started = time.perf_counter()
        for photo_id in photo_ids:
            tag_photo.apply_async((photo_id, False), queue=queue)
        tagged_s = searchable_s = first_searchable_s = half_searchable_s = None
        while time.perf_counter() - started < TIME_LIMIT_S:
            done = Photo.objects.filter(pk__in=photo_ids, status=Photo.Status.TAGGED).count()
            if done == len(photo_ids) and tagged_s is None:
                tagged_s = time.perf_counter() - started
            found = len(set(photo_ids) & indexed())
            if found and first_searchable_s is None:
                first_searchable_s = time.perf_counter() - started
            if found * 2 >= len(photo_ids) and half_searchable_s is None:
                half_searchable_s = time.perf_counter() - started
            if tagged_s is not None and found == len(photo_ids):
                searchable_s = time.perf_counter() - started
                break
            time.sleep(0.1)
    finally:
        worker.terminate()
        worker.wait(timeout=60)

    def seconds(value: float | None) -> str:
        return f"{value:.1f}" if value is not None else f"not within {TIME_LIMIT_S:.0f}"

    print(f"#### Tagging {len(photo_ids)} new photos into a {args.items:,}-item catalog (one Celery worker, "
          f"concurrency 1, PostgreSQL; INDEX_SYNC_DELAY_S = {settings.INDEX_SYNC_DELAY_S:g})\n")
    print(table(
        ["photos", "all tagged after s", "first searchable after s", "half searchable after s",
         "all searchable after s", "index"],
        [[f"{len(photo_ids)}", seconds(tagged_s), seconds(first_searchable_s), seconds(half_searchable_s),
          seconds(searchable_s), index_store_get().load().kind]],
    ))
    return 0


if __name__ == "__main__":
    sys.exit(main())
