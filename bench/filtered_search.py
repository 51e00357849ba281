"""Refine search ("same, but in red") through the index: three ways to find the matching photos' nearest.

    .venv/bin/python bench/filtered_search.py [--size 100000] [--queries 50]

A refine asks the index for the nearest of the photos that match its filters
(`VectorIndex.search_among`, 500 candidates: FILTER_CANDIDATE_PHOTOS). Three ways are timed, one query
at a time, at several matching shares: comparing the query with each matching vector (what
search_among does up to SCAN_AMONG_MATCHES_PER_ROOT times the root of the index's size: the HNSW
graph's stored vectors, read in place, through a FAISS selector), walking the HNSW graph with that
selector (what it does past that: k / share candidates explored, up to FILTERED_EF_SEARCH_MAX), and
searching the whole index for
k / share nearest (up to 20,000) and keeping the matches. Recall@10 is against exact float32 search
among the matches. Vectors are synthetic (3,000 random centres plus noise, L2-normalised; no model
needed), so figures compare the ways rather than predict the site's. Prints a markdown table.
Nothing is asserted.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import faiss
import numpy as np

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from environment import machine_line, median, table  # noqa: E402

import recognition.index as index_module  # noqa: E402
from recognition.index import VectorIndex  # noqa: E402

CANDIDATES = 500
OVERFETCH_MAX = 20_000
DIM = 1280


def overfetch(index: VectorIndex, query: np.ndarray, matching: np.ndarray) -> list:
    """The whole index's nearest, k / share of them (growing fourfold while too few match), kept if matching."""
    wanted = set(matching.tolist())
    k = min(-(-CANDIDATES * len(index) // len(matching)), OVERFETCH_MAX)
    while True:
        hits = index.search(query[None], k)[0]
        found = [hit for hit in hits if hit.id in wanted][:CANDIDATES]
        if len(found) >= CANDIDATES or len(hits) < k or k >= OVERFETCH_MAX:
            return found
        k = min(k * 4, OVERFETCH_MAX)


def among(index: VectorIndex, query: np.ndarray, matching: np.ndarray, *, scan: bool) -> list:
    """search_among made to scan the matches or to walk the graph, whatever their number (the site's
    SCAN_AMONG_MATCHES_PER_ROOT is restored after)."""
    kept = index_module.SCAN_AMONG_MATCHES_PER_ROOT
    index_module.SCAN_AMONG_MATCHES_PER_ROOT = math.inf if scan else 0
    try:
        return index.search_among(query, CANDIDATES, matching)
    finally:
        index_module.SCAN_AMONG_MATCHES_PER_ROOT = kept


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size", type=int, default=100_000, help="vectors in the index (HNSW past 10,000)")
    parser.add_argument("--queries", type=int, default=50)
    parser.add_argument("--shares", type=lambda text: [float(share) for share in text.split(",")],
                        default=[0.5, 0.3, 0.05, 0.01, 0.002], help="matching shares, comma-separated")
    args = parser.parse_args(argv)
    print(f"Machine: {machine_line()}; faiss OpenMP threads: every core to build, 1 to search\n", flush=True)
    rng = np.random.default_rng(0)
    centres = rng.standard_normal((3000, DIM)).astype(np.float32)

    def around_centres(n: int) -> np.ndarray:
        vectors = centres[rng.integers(0, len(centres), n)] + 1.2 * rng.standard_normal((n, DIM)).astype(np.float32)
        return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)

    vectors = around_centres(args.size)
    started = time.perf_counter()
    index = VectorIndex.build(np.arange(args.size, dtype=np.int64), vectors, flat_max_items=10_000)
    print(f"{index.kind} index of {args.size:,} vectors built in {time.perf_counter() - started:.0f}s\n", flush=True)
    faiss.omp_set_num_threads(1)  # as a web process searches
    queries = around_centres(args.queries)
    rows = []
    for share in args.shares:
        matching = np.flatnonzero(rng.random(args.size) < share).astype(np.int64)
        ways = {
            "scan the matches": lambda q, m=matching: among(index, q, m, scan=True),
            "walk the graph": lambda q, m=matching: among(index, q, m, scan=False),
            "over-fetch and keep": lambda q, m=matching: overfetch(index, q, m),
        }
        for name, search in ways.items():
            recalls, times, counts = [], [], []
            for query in queries:
                exact = set(matching[np.argsort(-(vectors[matching] @ query))[:10]].tolist())
                started = time.perf_counter()
                hits = search(query)
                times.append(time.perf_counter() - started)
                counts.append(len(hits))
                recalls.append(len(exact & {hit.id for hit in hits[:10]}) / 10)
            rows.append([
                f"{share:.1%}", f"{len(matching):,}", name, f"{median(times) * 1e3:.1f}",
                f"{np.percentile(times, 95) * 1e3:.1f}", f"{np.mean(recalls):.3f}", f"{median(counts):.0f}",
            ])
    print(f"#### Refine through the index: {CANDIDATES} candidates among the matching ids, {args.size:,} vectors\n")
    print(table(["matching", "photos", "way", "p50 ms", "p95 ms", "recall@10", "candidates found"], rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
