"""Catalog-wide reads by tag at 100k photos: refine, text search and Complete the look, in process.

    .venv/bin/python bench/tag_queries.py [--items 100000] [--repeats 10]

Uses the catalog of bench/http_search.py (its PostgreSQL database and var/bench-100k/, built when
missing): synthetic items, one photo each, four tags each with values drawn uniformly, so a colour
matches about one photo in thirteen and a style one in five. Times, one call at a time:

- refine ("same, but in red"): `search_by_embedding` with a filter, for stored embeddings of random
  photos as queries;
- text search: `search_by_text`, first page of 12 (tag words, and a free word that no item holds);
- Complete the look: `look_suggest` for 40 random anchors (type, colour, style).

Prints p50 / p95 and, for the look, the queries a call makes and their database time. A benchmark:
nothing is asserted. Not part of `make bench` (the HTTP bench covers the page; this isolates the reads).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from environment import machine_line, percentile, table  # noqa: E402
from http_search import catalog_open  # noqa: E402

REFINES = [
    {"colour": "red"},
    {"style": "casual"},
    {"colour": "black", "style": "party"},
    {"type": "hat", "colour": "navy"},
]
TEXT_QUERIES = ["casual", "red dress", "black party shoes", "linen"]  # "linen": a free word, in no item
LOOK_ANCHORS = 40


def timed(call, repeats: int) -> tuple[float, float]:
    """p50 and p95 in ms of `repeats` calls of `call(i)`, after one untimed call."""
    call(0)
    seconds = []
    for i in range(repeats):
        started = time.perf_counter()
        call(i)
        seconds.append(time.perf_counter() - started)
    return percentile(seconds, 50) * 1000, percentile(seconds, 95) * 1000


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--items", type=int, default=100_000)
    parser.add_argument("--repeats", type=int, default=10)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench-100k")
    args = parser.parse_args(argv)

    print(f"Machine: {machine_line()}\n", flush=True)
    catalog_open(items=args.items, var_dir=args.var_dir)
    from django.db import connection
    from django.test.utils import CaptureQueriesContext

    from catalog.models import Photo
    from catalog.selectors import photos_tagged_query
    from catalog.services.coordination import look_suggest
    from catalog.services.search import search_by_embedding
    from catalog.services.text_search import query_parse, search_by_text
    from recognition.labels import LABEL_SETS

    rng = random.Random(5)
    ids = list(Photo.objects.values_list("pk", flat=True))
    queries = [
        np.frombuffer(bytes(blob), dtype=np.float32)
        for blob in Photo.objects.filter(pk__in=rng.sample(ids, args.repeats)).values_list("embedding", flat=True)
    ]
    rows = []
    for filters in REFINES:
        matching = photos_tagged_query(filters=filters).count()
        p50, p95 = timed(
            lambda i, f=filters: search_by_embedding(
                embedding=queries[i % len(queries)], predictions={}, limit=12, filters=f
            ),
            args.repeats,
        )
        shown = ", ".join(f"{a}={v}" for a, v in filters.items())
        rows.append([f"refine {shown}", f"{matching:,}", f"{p50:.0f}", f"{p95:.0f}"])
    for query in TEXT_QUERIES:
        filters, words = query_parse(query)
        matching = f"{photos_tagged_query(filters=filters).count():,}" if not words else "(free word)"
        p50, p95 = timed(lambda i, q=query: search_by_text(query=q), args.repeats)
        rows.append([f'text search "{query}"', matching, f"{p50:.0f}", f"{p95:.0f}"])

    labels = {attribute: list(LABEL_SETS[attribute].labels) for attribute in ("type", "colour", "style")}
    anchors = [{a: rng.choice(values) for a, values in labels.items()} for _ in range(LOOK_ANCHORS)]
    look_suggest(anchor_tags=anchors[0])
    seconds, counts, database = [], [], []
    for anchor in anchors:
        with CaptureQueriesContext(connection) as captured:
            started = time.perf_counter()
            look_suggest(anchor_tags=anchor)
            seconds.append(time.perf_counter() - started)
        counts.append(len(captured.captured_queries))
        database.append(sum(float(q["time"]) for q in captured.captured_queries))
    rows.append([
        f"Complete the look, {LOOK_ANCHORS} random anchors",
        f"{percentile(counts, 50):.0f} queries ({percentile(database, 50) * 1000:.0f} ms in the database)",
        f"{percentile(seconds, 50) * 1000:.0f}",
        f"{percentile(seconds, 95) * 1000:.0f}",
    ])
    print(f"#### Reads by tag, {args.items:,}-item catalog ({connection.vendor}), one call at a time\n")
    print(table(["read", "photos matching the filters", "p50 ms", "p95 ms"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
