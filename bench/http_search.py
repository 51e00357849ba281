"""Upload to results over HTTP against gunicorn with a 100k-item catalog: p50/p95, first request, memory.

    .venv/bin/python bench/http_search.py [--items 100000] [--requests 100] [--workers 2] [--threads 4] [--cold]

Set-up: a PostgreSQL database of its own (BENCH_HTTP_DATABASE_URL, default
postgres://postgres@127.0.0.1:5432/fashion_bench_100k, created when missing), migrated, filled with
`--items` synthetic items, one photo each, with embeddings drawn around real photo embeddings (as
bench/index_search.py draws them) and four tags each (the type of the real photo it was drawn around,
random pattern, colour and style); then the index is rebuilt as `rebuild_index` does. A second run
reuses the catalog when it is complete. Media and index live in var/bench-100k/.

Server: gunicorn `fashion_search.wsgi` (its own warm-up, no bench hook), DEBUG off, rate limits off,
one inference thread per worker. Requests: real validation photos at 448 px on the shorter side (as the
shopper page sends them) posted to `POST /api/v1/search?limit=12`, and to the shopper page as search.js
posts them (`POST /`, answered with the results panel and the address of Complete the look, then that
`GET /look/...`), first one request at a time, then 4 at a time. Prints latency percentiles and each
worker's memory. With --cold, the index file is first dropped from the page cache, as after a reboot,
so the first searches read it from disk (bench/README.md, "From 100k to a million items", cold start).
A benchmark: nothing is asserted.
"""

from __future__ import annotations

import argparse
import html
import json
import os
import re
import shutil
import sys
import time
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from embed_throughput import UPLOAD_SHORT_SIDE_PX, as_uploaded, photo_paths  # noqa: E402
from environment import machine_line, percentile, table  # noqa: E402
from index_search import Synthesiser, real_embeddings  # noqa: E402
from serving import (  # noqa: E402
    app_env,
    children,
    database_create_if_missing,
    gunicorn_start,
    memory_mib,
    page_headers,
    post_image,
    stop,
)

DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fashion_bench_100k"
BULK_ROWS = 5000
BENCH_PHOTO = "photos/bench.jpg"


def catalog_synthesise(items: int, version: str, var_dir: Path) -> float:
    """Fill the bench database with `items` tagged items (skipped when already there); seconds spent."""
    from django.db import connection, transaction
    from django.utils import timezone

    from catalog.models import Item, Photo, Tag
    from catalog.services.index import index_rebuild
    from recognition.labels import COLOUR, PATTERN, STYLE

    if (
        Item.objects.count() == items
        and Photo.objects.filter(status=Photo.Status.TAGGED, embedding_model=version).count() == items
    ):
        print(f"  reusing the {items:,}-item catalog", file=sys.stderr, flush=True)
        return 0.0
    started = time.perf_counter()
    centres, labels, _, _ = real_embeddings(ROOT / "var" / "bench")
    vectors, picks = Synthesiser(centres, seed=7).vectors_and_centres(items)
    rng = np.random.default_rng(7)
    with connection.cursor() as cursor:
        if connection.vendor == "postgresql":
            cursor.execute("TRUNCATE catalog_tag, catalog_photo, catalog_item RESTART IDENTITY CASCADE")
        else:  # as TRUNCATE: no per-row signals (each deleted imported item would be remembered)
            cursor.execute("DELETE FROM catalog_look_items")
            cursor.execute("DELETE FROM catalog_tag")
            cursor.execute("DELETE FROM catalog_photo")
            cursor.execute("DELETE FROM catalog_item")
    media = var_dir / "media" / BENCH_PHOTO
    media.parent.mkdir(parents=True, exist_ok=True)
    shutil.copy(next(iter(sorted((ROOT / "catalog" / "demo_data").glob("*/*.jpg")))), media)
    now = timezone.now()
    for start in range(0, items, BULK_ROWS):
        end = min(items, start + BULK_ROWS)
        with transaction.atomic():
            created = Item.objects.bulk_create([
                Item(name=f"{labels[picks[i]]} {i}", brand="Bench", price=10 + i % 90,
                     shop_url=f"https://shop.example/items/{i}", import_key=f"bench-{i}")
                for i in range(start, end)
            ])
            photos = Photo.objects.bulk_create([
                Photo(item=item, image=BENCH_PHOTO, status=Photo.Status.TAGGED, embedding=vectors[i].tobytes(),
                      embedding_model=version, tagged_at=now)
                for item, i in zip(created, range(start, end), strict=True)
            ])
            tags = []
            for photo, i in zip(photos, range(start, end), strict=True):
                tags.append(Tag(photo=photo, attribute="type", value=str(labels[picks[i]]),
                                score=float(rng.uniform(0.5, 1.0)), source=Tag.Source.MODEL, is_best=True))
                for label_set in (PATTERN, COLOUR, STYLE):
                    tags.append(Tag(photo=photo, attribute=label_set.attribute,
                                    value=label_set.labels[rng.integers(len(label_set.labels))],
                                    score=float(rng.uniform(0.2, 1.0)), source=Tag.Source.MODEL, is_best=True))
            Tag.objects.bulk_create(tags)
        print(f"  {end:,} items", file=sys.stderr, flush=True)
    if connection.vendor == "postgresql":
        # Planner statistics and the visibility map, as autovacuum would gather them in a live database
        # within minutes of a bulk insert. Without statistics PostgreSQL guessed 38k rows for the 200
        # candidates' tags and scanned the whole tag table (33 ms a search instead of 2 ms, measured);
        # without the map every index-only scan visits the table too (a refine's ids for colour=red:
        # 15 ms instead of 7).
        with connection.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
    index = index_rebuild()
    print(f"  index: {len(index):,} vectors, {index.kind}", file=sys.stderr, flush=True)
    return time.perf_counter() - started


def catalog_open(*, items: int, var_dir: Path, **extra: str) -> tuple[dict[str, str], float]:
    """Set this process up on the bench's catalog: its database (created when missing), Django, migrated
    and filled with `items` items (`catalog_synthesise`). `extra` goes into the app's environment.

    Returns that environment, for the servers and workers started from here, and the seconds spent
    filling the catalog (0 when it was already complete).
    """
    database_url = os.environ.get("BENCH_HTTP_DATABASE_URL", DEFAULT_DATABASE_URL)
    database_create_if_missing(database_url)
    env = app_env(database_url=database_url, var_dir=var_dir, RECOGNITION_THREADS="1") | extra
    os.environ.update(env)
    os.environ["DJANGO_SETTINGS_MODULE"] = "fashion_search.settings"
    import django

    django.setup()
    from django.core.management import call_command

    from recognition.services import backbone_get

    call_command("migrate", "--noinput", verbosity=0)
    return env, catalog_synthesise(items, backbone_get().version, var_dir)


def run_requests(
    url: str, uploads: list[bytes], count: int, concurrency: int, headers: dict[str, str] | None = None
) -> tuple[list[float], list[float], int, float]:
    """Latencies (s) of `count` searches sent `concurrency` at a time, the same until Complete the look is
    shown too, how many failed, and requests/s.

    With `headers` (`page_headers`) they go to the shopper page as search.js sends them: the results
    panel first, then the look from the address the panel gives (`GET /look/...`). The API has no look.
    """
    base_url = url.split("/", 3)[:3]

    def one(i: int) -> tuple[float, float, bool]:
        status, body, seconds = post_image(url, uploads[i % len(uploads)], headers=headers)
        if not headers:
            return seconds, seconds, status == 200 and bool(json.loads(body).get("results"))
        slot = re.search(rb'id="look-slot" data-src="([^"]+)"', body)
        if status != 200 or b'id="similar-items"' not in body or slot is None:
            return seconds, seconds, False
        look_url = "/".join(base_url) + html.unescape(slot.group(1).decode())
        started = time.perf_counter()
        with urllib.request.urlopen(look_url, timeout=120) as response:
            look = response.read()
        return seconds, seconds + time.perf_counter() - started, b'id="look-title"' in look

    started = time.perf_counter()
    with ThreadPoolExecutor(max_workers=concurrency) as pool:
        results = list(pool.map(one, range(count)))
    rate = count / (time.perf_counter() - started)
    return [s for s, _, _ in results], [t for _, t, _ in results], sum(1 for *_, ok in results if not ok), rate


def index_files_evict(directory: Path) -> None:
    """Drop the index files from the kernel's page cache, as after a reboot (no root needed: they are clean)."""
    for path in directory.glob("index-*.faiss"):
        with open(path, "rb") as handle:
            os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--requests", type=int, default=100)
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--threads", type=int, default=4)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench-100k")
    parser.add_argument("--cold", action="store_true",
                        help="drop the index file from the page cache before starting the server (a cold start)")
    args = parser.parse_args(argv)

    print(f"Machine: {machine_line()}\n", flush=True)
    env, setup_s = catalog_open(items=args.items, var_dir=args.var_dir)
    from django.db import connections

    connections.close_all()

    uploads = [as_uploaded(p) for p in photo_paths("validation")[::7][:50]]
    if args.cold:
        index_files_evict(args.var_dir / "index")
    log = args.var_dir / "results" / "gunicorn.log"
    started = time.perf_counter()
    server, base_url = gunicorn_start(env, workers=args.workers, threads=args.threads, log=log)
    start_s = time.perf_counter() - started
    try:
        url = f"{base_url}/api/v1/search?limit=12"
        first_status, _, first_s = post_image(url, uploads[0])
        rows = []
        targets = (("API, POST /api/v1/search", url, None),
                   ("shopper page, POST /: similar items shown", f"{base_url}/", page_headers(base_url)))
        for what, target, headers in targets:
            for concurrency in (1, 4):
                times, totals, failed, rate = run_requests(target, uploads, args.requests, concurrency, headers)
                shown = [(what, times)] + ([("shopper page, then GET /look/: Complete the look shown", totals)]
                                           if headers else [])
                for label, seconds in shown:
                    rows.append([label, f"{concurrency} at a time", f"{len(seconds)}", f"{failed}",
                                 f"{percentile(seconds, 50) * 1000:.0f}", f"{percentile(seconds, 95) * 1000:.0f}",
                                 f"{max(seconds) * 1000:.0f}", f"{rate:.1f}"])
        memory = [memory_mib(pid) for pid in children(server.pid)]
    finally:
        stop(server)
    upload_kb = np.mean([len(u) for u in uploads]) / 1024
    cold = ", started with the index out of the page cache" if args.cold else ""
    print(f"#### Upload to results over HTTP, {args.items:,}-item catalog{cold} ({args.workers} gunicorn workers x "
          f"{args.threads} threads, PostgreSQL, {UPLOAD_SHORT_SIDE_PX}-px JPEG uploads of ~{upload_kb:.0f} KB)\n")
    print(f"Server start to every worker warmed up: {start_s:.1f}s; first request after start: "
          f"{first_s * 1000:.0f} ms (HTTP {first_status})" + (f"; catalog set-up {setup_s:.0f}s" if setup_s else "")
          + ".\n")
    print(table(["endpoint", "requests", "sent", "failed", "p50 ms", "p95 ms", "max ms", "requests/s"], rows) + "\n")
    print(table(["gunicorn worker", "peak RSS MiB", "RSS MiB after the run", "anonymous RSS MiB"],
                [[f"worker {i + 1}", f"{m['peak_rss']:.0f}", f"{m['rss']:.0f}", f"{m['anon']:.0f}"]
                 for i, m in enumerate(memory)]))
    return 0


if __name__ == "__main__":
    sys.exit(main())
