"""Vector search latency and recall@10 against exact search, for catalogs of 10k, 100k and 1M vectors.

    .venv/bin/python bench/index_search.py [--sizes 10000,100000,1000000] [--hnsw-max-items 1000000]

Queries are real: the embeddings of clothing-small's validation photos (the site's backbone). The
catalog vectors are synthetic but shaped like real ones: each is a real training-photo embedding
(one of ~3,000 centres) plus Gaussian noise drawn from the covariance of the real embeddings (top
256 principal components), scaled so that a synthetic vector is as close to its centre as a real
photo is to its nearest other photo, then L2-normalised. (I.i.d. random unit vectors would be the
worst case for any approximate index and nothing like a catalog.)

For each size: the exact answer (brute force) is the reference; each index type is timed one query
at a time, as the site searches, and its top 10 compared with the exact top 10 (recall@10). HNSW is
VectorIndex's own (M 32, efConstruction 80, vectors stored as float16), swept over efSearch; IVF-Flat
(nlist about sqrt(N)) is swept over nprobe; "auto" is what VectorIndex.build picks at
FLAT_INDEX_MAX_ITEMS, searched for 200 candidates as catalog.services.search does. Prints markdown
tables. Nothing is asserted.
"""

from __future__ import annotations

import argparse
import gc
import math
import os
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]
os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashion_search.settings")

from environment import machine_line, percentile, table  # noqa: E402

DATASET = ROOT.parent / "shared" / "datasets" / "clothing-small"
PCA_COMPONENTS = 256
RECALL_TARGET = 0.95
K = 10
SITE_CANDIDATES = 200  # catalog.services.search.CANDIDATE_PHOTOS
LATENCY_BUDGET_S = 20.0  # per measured configuration; slow ones (flat at 1M) are timed on fewer queries
EF_SEARCH = (16, 32, 64, 128, 256)
NPROBE = (1, 2, 4, 8, 16, 32, 64)


def real_embeddings(cache: Path) -> tuple[np.ndarray, np.ndarray, np.ndarray, str]:
    """(training-photo embeddings, their type labels, validation-photo embeddings, backbone version).

    Computed with the site's backbone and cached per backbone version in `cache`.
    """
    from recognition.images import decode_image, model_draft_size
    from recognition.services import backbone_get

    backbone = backbone_get()
    path = cache / f"embeddings-{backbone.version.replace(':', '-')}.npz"
    if path.exists():
        with np.load(path) as data:
            if "train_labels" in data:
                return data["train"], data["train_labels"], data["validation"], backbone.version
    splits = {}
    for split in ("train", "validation"):
        files = sorted((DATASET / split).glob("*/*.jpg")) or sorted((ROOT / "catalog" / "demo_data").glob("*/*.jpg"))
        vectors = []
        for start in range(0, len(files), 32):
            images = [
                decode_image(
                    f.read_bytes(), max_bytes=10**8, max_pixels=10**8,
                    draft_size=model_draft_size(backbone.input_size),
                )
                for f in files[start : start + 32]
            ]
            vectors.append(backbone.embed(images))
        splits[split] = np.vstack(vectors).astype(np.float32)
        splits[f"{split}_labels"] = np.array([f.parent.name for f in files])
    cache.mkdir(parents=True, exist_ok=True)
    np.savez(path, **splits)
    return splits["train"], splits["train_labels"], splits["validation"], backbone.version


class Synthesiser:
    """Unit vectors around real embeddings, with the real embeddings' covariance (see module docstring)."""

    def __init__(self, centres: np.ndarray, seed: int = 0) -> None:
        self.centres = centres
        centred = centres - centres.mean(axis=0)
        eigenvalues, eigenvectors = np.linalg.eigh(centred.T @ centred / len(centres))
        top = np.argsort(eigenvalues)[::-1][:PCA_COMPONENTS]
        self.basis = (eigenvectors[:, top] * np.sqrt(np.maximum(eigenvalues[top], 0))).T.astype(np.float32)
        self.rng = np.random.default_rng(seed)
        similarity = centres @ centres.T
        np.fill_diagonal(similarity, -1)
        self.target = float(np.median(similarity.max(axis=1)))  # a real photo to its nearest other photo
        self.scale = self._calibrate()

    def _draw(self, n: int, scale: float) -> np.ndarray:
        picks = self.rng.integers(0, len(self.centres), n)
        noise = self.rng.standard_normal((n, PCA_COMPONENTS), dtype=np.float32) @ self.basis
        vectors = self.centres[picks] + scale * noise
        vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
        return vectors, picks

    def _calibrate(self) -> float:
        low, high = 0.0, 4.0
        for _ in range(30):
            middle = (low + high) / 2
            vectors, picks = self._draw(2000, middle)
            cosine = float(np.median(np.sum(vectors * self.centres[picks], axis=1)))
            low, high = (middle, high) if cosine > self.target else (low, middle)
        return (low + high) / 2

    def vectors(self, n: int, chunk: int = 100_000) -> np.ndarray:
        return self.vectors_and_centres(n, chunk)[0]

    def vectors_and_centres(self, n: int, chunk: int = 100_000) -> tuple[np.ndarray, np.ndarray]:
        """n synthetic unit vectors and, for each, the index of the real embedding it was drawn around."""
        out = np.empty((n, self.centres.shape[1]), dtype=np.float32)
        picks = np.empty(n, dtype=np.int64)
        for start in range(0, n, chunk):
            out[start : start + chunk], picks[start : start + chunk] = self._draw(min(chunk, n - start), self.scale)
        return out, picks


def timed_search(search, queries: np.ndarray, threads: int = 1) -> tuple[list[float], list[np.ndarray]]:
    """Seconds per single query and the returned ids, until every query ran or the budget is spent.

    Runs with `threads` OpenMP threads: 1 by default, as web processes search (fashion_search/wsgi.py).
    """
    import faiss

    previous = faiss.omp_get_max_threads()
    faiss.omp_set_num_threads(threads)
    try:
        search(queries[:1])  # warm-up
        times, ids = [], []
        budget_end = time.perf_counter() + LATENCY_BUDGET_S
        for query in queries:
            started = time.perf_counter()
            ids.append(search(query[None]))
            times.append(time.perf_counter() - started)
            if time.perf_counter() > budget_end and len(times) >= 10:
                break
        return times, ids
    finally:
        faiss.omp_set_num_threads(previous)


def recall_at_k(found: list[np.ndarray], exact: np.ndarray) -> float:
    hits = [len(set(row[:K].tolist()) & set(exact[i, :K].tolist())) for i, row in enumerate(found)]
    return sum(hits) / (K * len(found))


def row(index_type: str, n: int, parameter: str, times: list[float], recall: float, note: str = "") -> list[str]:
    p50, p95 = percentile(times, 50) * 1000, percentile(times, 95) * 1000
    return [index_type, f"{n:,}", parameter, f"{p50:.2f}", f"{p95:.2f}", f"{recall:.3f}", f"{len(times)}", note]


def measure_size(n: int, synth: Synthesiser, queries: np.ndarray, hnsw_max: int, flat_max: int) -> list[list[str]]:
    import faiss

    from recognition.index import HNSW_EF_SEARCH, VectorIndex

    rows: list[list[str]] = []
    started = time.perf_counter()
    vectors = synth.vectors(n)
    ids = np.arange(n, dtype=np.int64)
    print(f"  {n:,}: {n * vectors.shape[1] * 4 / 2**30:.1f} GiB of vectors in {time.perf_counter() - started:.0f}s",
          file=sys.stderr, flush=True)
    started = time.perf_counter()
    _, exact = faiss.knn(queries, vectors, SITE_CANDIDATES, metric=faiss.METRIC_INNER_PRODUCT)
    print(f"  exact answers in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)

    def raw(index):
        return lambda q: index.search(q, K)[1][0]

    # Flat: the reference itself, timed.
    started = time.perf_counter()
    flat = VectorIndex.build(ids, vectors, flat_max_items=n)
    build = time.perf_counter() - started
    times, found = timed_search(raw(flat._index), queries)
    rows.append(row("flat (exact)", n, "-", times, recall_at_k(found, exact), f"built in {build:.1f}s"))
    threads = faiss.omp_get_max_threads()
    if threads > 1:  # faiss's default: one OpenMP thread per core, even for a single query
        times, found = timed_search(raw(flat._index), queries[:100], threads=threads)
        rows.append(row("flat (exact)", n, "-", times, recall_at_k(found, exact), f"{threads} OpenMP threads"))
    site_flat = None
    if n <= flat_max:
        site_flat = flat
    else:
        del flat
        gc.collect()

    # IVF-Flat with a trained coarse quantizer.
    nlist = 2 ** round(math.log2(math.sqrt(n)))
    started = time.perf_counter()
    quantizer = faiss.IndexFlatIP(vectors.shape[1])
    ivf = faiss.IndexIVFFlat(quantizer, vectors.shape[1], nlist, faiss.METRIC_INNER_PRODUCT)
    ivf.cp.max_points_per_centroid = 64  # train on at most 64 x nlist vectors: minutes saved, same recall
    training = vectors[np.random.default_rng(1).choice(n, min(n, 64 * nlist), replace=False)]
    ivf.train(training)
    # VectorIndex keeps an id map around its FAISS index; IVF's own numbering (0..n-1) equals `ids`.
    ivf_mapped = faiss.IndexIDMap2(ivf)
    ivf_mapped.add_with_ids(vectors, ids)
    build = time.perf_counter() - started
    chosen_nprobe = None
    for nprobe in NPROBE:
        ivf.nprobe = nprobe
        times, found = timed_search(raw(ivf), queries)
        recall = recall_at_k(found, exact)
        note = f"nlist {nlist}, built in {build:.0f}s" if nprobe == NPROBE[0] else ""
        rows.append(row("IVF-Flat", n, f"nprobe {nprobe}", times, recall, note))
        if recall >= RECALL_TARGET and chosen_nprobe is None:
            chosen_nprobe = nprobe
        if recall >= 0.99:
            break

    # HNSW as VectorIndex builds it, when its build fits the bench's time.
    hnsw = None
    if n <= hnsw_max:
        started = time.perf_counter()
        hnsw = VectorIndex.build(ids, vectors, flat_max_items=-1)
        build = time.perf_counter() - started
        inner = faiss.downcast_index(hnsw._index.index)
        for ef in EF_SEARCH:
            inner.hnsw.efSearch = ef
            times, found = timed_search(raw(hnsw._index), queries)
            recall = recall_at_k(found, exact)
            note = f"built in {build:.0f}s" if ef == EF_SEARCH[0] else ""
            rows.append(row("HNSW (VectorIndex)", n, f"efSearch {ef}", times, recall, note))
            if recall >= 0.99:
                break
        inner.hnsw.efSearch = HNSW_EF_SEARCH
    else:
        rows.append(["HNSW (VectorIndex)", f"{n:,}", "-", "-", "-", "-", "0",
                     f"not built: over --hnsw-max-items {hnsw_max:,} (build time, see below)"])

    # What the site does: VectorIndex.build's own choice at FLAT_INDEX_MAX_ITEMS, 200 candidates per query.
    if site_flat is not None:
        site, kind = site_flat, f"auto: flat (<= {flat_max:,})"
    elif hnsw is not None:
        site, kind = hnsw, f"auto: HNSW efSearch {HNSW_EF_SEARCH} (> {flat_max:,})"
    else:
        site, kind = None, ""
    if site is not None:
        times, found = timed_search(lambda q: np.array([h.id for h in site.search(q, SITE_CANDIDATES)[0]]), queries)
        rows.append(row(kind, n, f"k={SITE_CANDIDATES}, VectorIndex.search", times, recall_at_k(found, exact)))
    if chosen_nprobe is not None:
        ivf.nprobe = chosen_nprobe
        wrapped = VectorIndex(vectors.shape[1], ivf_mapped)
        times, found = timed_search(lambda q: np.array([h.id for h in wrapped.search(q, SITE_CANDIDATES)[0]]), queries)
        rows.append(row(f"IVF-Flat nprobe {chosen_nprobe}", n, f"k={SITE_CANDIDATES}, VectorIndex.search", times,
                        recall_at_k(found, exact), "smallest nprobe with recall@10 >= 0.95"))
    return rows


def flat_crossover(synth: Synthesiser, queries: np.ndarray, sizes: list[int]) -> list[list[str]]:
    """Exact search latency at the sizes between which FLAT_INDEX_MAX_ITEMS should sit."""
    from recognition.index import VectorIndex

    rows = []
    for n in sizes:
        flat = VectorIndex.build(np.arange(n, dtype=np.int64), synth.vectors(n), flat_max_items=n)
        times, _ = timed_search(lambda q, index=flat: index._index.search(q, K)[1][0], queries[:100])
        rows.append(row("flat (exact)", n, "-", times, 1.0))
    return rows


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", default="10000,100000,1000000")
    parser.add_argument("--hnsw-max-items", type=int, default=1_000_000,
                        help="build HNSW only up to this size (about 10 minutes at 1M on 2 cores)")
    args = parser.parse_args(argv)

    import django

    django.setup()
    import faiss
    from django.conf import settings

    print(f"Machine: {machine_line()}; faiss OpenMP threads {faiss.omp_get_max_threads()}\n", flush=True)
    centres, _, queries, version = real_embeddings(settings.VAR_DIR / "bench")
    synth = Synthesiser(centres)
    print(f"Backbone {version}. {len(queries)} real query photos; {len(centres)} real centres; synthetic vectors at "
          f"median cosine {synth.target:.3f} to their centre (a real photo to its nearest other photo).\n", flush=True)
    rows = []
    for n in (int(s) for s in args.sizes.split(",")):
        started = time.perf_counter()
        rows += measure_size(n, synth, queries, args.hnsw_max_items, settings.FLAT_INDEX_MAX_ITEMS)
        print(f"  {n:,} done in {time.perf_counter() - started:.0f}s", file=sys.stderr, flush=True)
        gc.collect()
    header = ["index", "vectors", "parameter", "p50 ms", "p95 ms", "recall@10", "queries", "note"]
    print(f"#### Search, one query at a time, top {K}, 1 OpenMP thread unless noted "
          f"(FLAT_INDEX_MAX_ITEMS = {settings.FLAT_INDEX_MAX_ITEMS:,})\n")
    print(table(header, rows) + "\n")
    print("#### Exact search between 10k and 100k (where flat stops paying)\n")
    print(table(header, flat_crossover(synth, queries, [15_000, 20_000, 30_000, 50_000])))
    return 0


if __name__ == "__main__":
    sys.exit(main())
