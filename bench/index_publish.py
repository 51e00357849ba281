"""Publishing into a large index: a delta over the base against a whole new base, and a delta's search cost.

    .venv/bin/python bench/index_publish.py [--var-dir var/bench-1m] [--photos 40] [--rounds 5]

Works on the published index of a bench catalog (bench/http_search.py builds them), through a copy
of its directory made of hard links, so the catalog's own index is never touched. Times, each in
this process as a worker's sync does it (IndexStore.editing: read, edit, write, fsync, rename):
- `--rounds` publishes of `--photos` new vectors each: over an HNSW base, each writes a delta only;
- a merge of those deltas into a new base: the whole rewrite that every publish did before;
- searches for the site's 200 candidates with the base alone, and with a delta of MERGE_DUE_MOST
  vectors beside it (the most a delta holds before it is due a merge), one query at a time.
Vectors are random unit vectors: their values do not change what a publish or a flat search costs.
Prints a markdown table. A benchmark: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from environment import machine_line, percentile, table  # noqa: E402

SEARCH_QUERIES = 50
SITE_CANDIDATES = 200  # catalog.services.search.CANDIDATE_PHOTOS
FIRST_NEW_ID = 10**12  # far above any photo id of a bench catalog


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench-1m")
    parser.add_argument("--photos", type=int, default=40)
    parser.add_argument("--rounds", type=int, default=5)
    args = parser.parse_args(argv)

    from recognition.index_layers import MERGE_DUE_MOST
    from recognition.index_store import CURRENT_FILE, DELTA_SEPARATOR, IndexStore

    source = args.var_dir / "index"
    if not (source / CURRENT_FILE).exists():
        print(f"{source} holds no published index: build a bench catalog first (bench/http_search.py).")
        return 2
    print(f"Machine: {machine_line()}\n", flush=True)
    copy = args.var_dir / "index-publish-bench"
    shutil.rmtree(copy, ignore_errors=True)
    copy.mkdir()
    try:
        version = (source / CURRENT_FILE).read_text().strip()
        base_version, _, delta_version = version.partition(DELTA_SEPARATOR)
        names = [f"index-{base_version}.faiss"] + ([f"delta-{delta_version}.faiss"] if delta_version else [])
        for name in names:
            os.link(source / name, copy / name)
        (copy / CURRENT_FILE).write_text(version)
        probe = IndexStore(copy, 0).load()
        store = IndexStore(copy, probe.dim)
        size, kind = len(probe), probe.kind
        del probe
        rng = np.random.default_rng(0)

        def unit(count: int) -> np.ndarray:
            vectors = rng.standard_normal((count, store.dim)).astype(np.float32)
            return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

        next_id = FIRST_NEW_ID
        publishes = []
        for _ in range(args.rounds):
            ids = np.arange(next_id, next_id + args.photos)
            next_id += args.photos
            started = time.perf_counter()
            with store.editing() as index:
                index.add(ids, unit(args.photos))
            publishes.append(time.perf_counter() - started)
        delta_rss = _peak_rss_mib()
        delta_bytes = sum(path.stat().st_size for path in copy.glob("delta-*.faiss"))
        published_delta = DELTA_SEPARATOR in store.current_version()

        started = time.perf_counter()
        with store.editing() as index:
            index.merge()
        merge_s = time.perf_counter() - started
        merge_rss = _peak_rss_mib()

        queries = unit(SEARCH_QUERIES)
        base_ms = _search_ms(store.load(), queries)
        with store.editing() as index:
            index.add(np.arange(next_id, next_id + MERGE_DUE_MOST), unit(MERGE_DUE_MOST))
        with_delta_ms = _search_ms(store.load(), queries)
    finally:
        shutil.rmtree(copy, ignore_errors=True)

    print(f"Index: {size:,} vectors ({kind}) from {source}.\n")
    rows = [
        [
            f"publish {args.photos} new vectors ({'a delta' if published_delta else 'whole'})",
            f"{percentile(publishes, 50):.2f} s p50, {max(publishes):.2f} s max ({args.rounds} publishes)",
            f"{delta_rss:,} MiB",
        ],
        [
            f"merge the {args.photos * args.rounds} into a new base (the whole rewrite)",
            f"{merge_s:.2f} s",
            f"{merge_rss:,} MiB",
        ],
        ["search, base alone", f"{percentile(base_ms, 50):.1f} / {percentile(base_ms, 95):.1f} ms p50 / p95", ""],
        [
            f"search, with a delta of {MERGE_DUE_MOST:,} vectors",
            f"{percentile(with_delta_ms, 50):.1f} / {percentile(with_delta_ms, 95):.1f} ms p50 / p95",
            "",
        ],
    ]
    print(table(["step", "time", "peak RSS of this process so far"], rows))
    print(f"\nDelta files on disk after the publishes: {delta_bytes / 2**20:.1f} MiB")
    return 0


def _search_ms(index, queries: np.ndarray) -> list[float]:
    index.search(queries[:1], SITE_CANDIDATES)  # warm: the first search builds the tombstone selector
    timings = []
    for query in queries:
        started = time.perf_counter()
        index.search(query.reshape(1, -1), SITE_CANDIDATES)
        timings.append((time.perf_counter() - started) * 1000)
    return timings


def _peak_rss_mib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss // 1024


if __name__ == "__main__":
    sys.exit(main())
