"""The FAISS vector index in memory: exact while small, HNSW beyond a size limit.

Its file (the FAISS index, tombstones, stamps and a trailer, published by one rename) is written and
read by recognition.index_file.
"""
from __future__ import annotations

import copy
import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray

from recognition.errors import RecognitionError
from recognition.index_file import IndexFileContents, index_file_read, index_file_write

logger = logging.getLogger(__name__)

HNSW_NEIGHBOURS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
# The most candidates a filtered HNSW search explores (search_among); measured in bench/README.md.
FILTERED_EF_SEARCH_MAX = 16384
# Up to this many matching vectors per square root of the index's size (38,000 at 100k vectors,
# 120,000 at a million), search_among compares the query with each of them (the HNSW graph's stored
# vectors, read in place) instead of walking the graph. Comparing costs about 0.6 us a match; the
# walk explores k / share nodes, so its time falls as the matches grow in number, and the two cross
# where the matches are about proportional to the root of the size: measured at about 50,000 of
# 100,000 and 120,000 of 1,000,000 (bench/filtered_search.py). Below that, comparing is also exact,
# where the walk's recall@10 fell to 0.89 for 1% of a million.
SCAN_AMONG_MATCHES_PER_ROOT = 120
# HNSW graphs store their vectors as float16: half the memory of float32 (270 against 514 MiB at 100k
# vectors of 1280 dimensions), with the same recall@10 (0.995 for 200 candidates at 100k) and searches no
# slower (0.92 against 1.10 ms), measured with bench/index_search.py's vectors. Exact (flat) indexes keep
# float32: they are small, and exact means exact.
REBUILD_CHUNK = 65_536
# Above this fraction of tombstoned slots an HNSW index is due a rebuild from its live vectors (compaction_due).
COMPACT_REMOVED_FRACTION = 0.2
# The stamp of a vector whose source version is unknown (added without one, or read from a file
# written before stamps). The catalog counts it as out of date: nothing tells whether it is current.
UNKNOWN_STAMP = -1


class IndexUnreadable(RecognitionError):
    """The file that `CURRENT` names is missing or not a FAISS index (the index must be rebuilt)."""

    code = "index_unreadable"
    unavailable_message = "Photo search is unavailable right now; please try again later."


class IndexReadOnly(RecognitionError):
    """An edit of an index whose vectors are memory-mapped (the store's searching copy)."""

    code = "index_read_only"


@dataclass(frozen=True)
class IndexHit:
    """One search result: an external id (a photo id) and its inner-product similarity."""

    id: int
    score: float


class VectorIndex:
    """Inner-product search over L2-normalised vectors, keyed by int64 ids.

    An HNSW graph cannot drop a node, and rebuilding it took 136 s at 100k vectors on 2 cores, so
    removing from an HNSW index only marks the vector's slot removed (a tombstone): search skips
    those slots through a FAISS selector, and `ids()` and `len()` leave them out. Tombstones are
    internal slots, not photo ids, so a photo removed and added again (an upsert) has its old
    vector skipped and its new one found. Once tombstones exceed COMPACT_REMOVED_FRACTION of the
    slots, `compaction_due` says so, and the owner calls `compact()` in the background: edits never
    rebuild the graph themselves, since a rebuild takes minutes at a million vectors and would land
    in whichever request or task crossed the threshold. A flat index removes vectors at once.

    Each vector carries a stamp, an int64 the owner chooses for the version of the data it came from
    (the catalog uses the photo's tagging time), so an owner can tell a vector gone out of date from
    a current one by comparing `stamps()` with its own, without reading any vector back.

    Not thread-safe for writes; the store serialises writers with a file lock. An index read with
    `mapped=True` is read-only: FAISS aborts the process on an edit of memory-mapped vectors, so
    edits raise IndexReadOnly first.
    """

    def __init__(
        self,
        dim: int,
        faiss_index: faiss.Index | None = None,
        version: str = "",
        removed: NDArray[np.int64] | None = None,
        *,
        stamps: NDArray[np.int64] | None = None,
        mapped: bool = False,
    ) -> None:
        self.dim = dim
        self.version = version
        self.mapped = mapped
        self._index = faiss_index if faiss_index is not None else self._empty(dim, hnsw=False)
        # Whether an edit changed anything since this object was read or built (a store publishes only then).
        self.changed = False
        self._slot_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
        self._live = np.ones(len(self._slot_ids), dtype=bool)
        self._stamps = _stamps_or_unknown(stamps, len(self._slot_ids))
        if removed is not None and len(removed):
            self._live[np.asarray(removed, dtype=np.int64)] = False
        self._search_params: tuple[object, ...] | None = None

    @staticmethod
    def _empty(dim: int, *, hnsw: bool) -> faiss.Index:
        if not hnsw:
            return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))
        graph = faiss.IndexHNSWSQ(dim, faiss.ScalarQuantizer.QT_fp16, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
        graph.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
        graph.hnsw.efSearch = HNSW_EF_SEARCH
        return faiss.IndexIDMap2(graph)

    @classmethod
    def build(
        cls,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        *,
        flat_max_items: int,
        stamps: NDArray[np.int64] | None = None,
    ) -> VectorIndex:
        """Build an exact index up to `flat_max_items` vectors, an HNSW index beyond."""
        dim = vectors.shape[1]
        vector_index = cls(dim, cls._empty(dim, hnsw=len(ids) > flat_max_items))
        vector_index.add(ids, vectors, stamps=stamps)
        return vector_index

    @property
    def kind(self) -> str:
        inner = faiss.downcast_index(self._index.index)
        return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"

    def __len__(self) -> int:
        return int(np.count_nonzero(self._live))

    @property
    def removed_slots(self) -> int:
        """Tombstoned slots awaiting compaction (always 0 for a flat index)."""
        return len(self._live) - len(self)

    def ids(self) -> NDArray[np.int64]:
        """The ids of the live vectors (a photo indexed twice appears twice)."""
        return self._slot_ids[self._live]

    def stamps(self) -> NDArray[np.int64]:
        """The stamps of the live vectors, in the order of `ids()` (UNKNOWN_STAMP where none was given)."""
        return self._stamps[self._live]

    def add(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        *,
        stamps: NDArray[np.int64] | None = None,
        flat_max_items: int | None = None,
    ) -> None:
        """Add or replace vectors: an id already present is removed first (upsert).

        Replacing costs what adding does: in an HNSW index the old vector is only tombstoned. `stamps`
        (one per id) default to UNKNOWN_STAMP. With `flat_max_items`, a flat index that now holds more
        vectors than that becomes HNSW.
        """
        if len(ids) == 0:
            return
        self._writable()
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        stamps = _stamps_or_unknown(stamps, len(ids))
        self._remove_lazily(ids)
        self._index.add_with_ids(vectors, ids)
        self._slot_ids = np.concatenate([self._slot_ids, ids])
        self._live = np.concatenate([self._live, np.ones(len(ids), dtype=bool)])
        self._stamps = np.concatenate([self._stamps, stamps])
        self._edited()
        # Once, at the flat limit (about a second at 10k vectors), so it stays inline unlike compaction.
        if flat_max_items is not None and self.kind == "flat" and len(self) > flat_max_items:
            self._rebuild(hnsw=True, reason=f"grew past {flat_max_items} vectors")

    @property
    def slots(self) -> int:
        """Slots in the FAISS index, tombstoned ones included."""
        return len(self._slot_ids)

    def tombstoned(self) -> NDArray[np.int64]:
        """The tombstoned slots, in order."""
        return np.flatnonzero(~self._live)

    def live_ids_among(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """Which of `ids` have a live vector here, each once."""
        return np.unique(self._slot_ids[self._live_slots(ids)])

    def live_entries(self) -> tuple[NDArray[np.int64], NDArray[np.float32], NDArray[np.int64]]:
        """The live vectors' ids, vectors (as stored, decoded to float32) and stamps."""
        storage = faiss.downcast_index(self._index.index)
        if isinstance(storage, faiss.IndexHNSW):
            storage = faiss.downcast_index(storage.storage)
        vectors = storage.reconstruct_n(0, self.slots) if self.slots else np.zeros((0, self.dim), np.float32)
        return self._slot_ids[self._live], np.ascontiguousarray(vectors[self._live]), self._stamps[self._live]

    def view(self) -> VectorIndex:
        """A copy sharing this index's vectors and graph, with tombstones of its own (`hide`).

        Cheap (one bool a slot), so a delta's removals can be applied to a base that other searches
        share, mapped or not. Edit the view only through `hide`: its FAISS index is the original's.
        """
        viewed = copy.copy(self)
        viewed._live = self._live.copy()
        viewed._search_params = None
        viewed.changed = False
        return viewed

    def hide(self, ids: NDArray[np.int64]) -> int:
        """Tombstone the live slots of `ids` without touching FAISS's data, so also in a mapped index.

        Returns how many slots it tombstoned. For a layer's removals (recognition.index_layers); use
        `remove` to edit an index of one's own.
        """
        slots = self._live_slots(ids)
        self.hide_slots(slots)
        return len(slots)

    def hide_slots(self, slots: NDArray[np.int64]) -> None:
        """Tombstone `slots` (as `hide`, by slot)."""
        if len(slots):
            self._live[slots] = False
            self._search_params = None

    def remove(self, ids: NDArray[np.int64]) -> int:
        """Remove ids (absent ones are ignored); returns how many were removed. Never rebuilds the graph."""
        self._writable()
        return self._remove_lazily(np.asarray(ids, dtype=np.int64))

    @property
    def compaction_due(self) -> bool:
        """Whether tombstones exceed COMPACT_REMOVED_FRACTION of the slots, so `compact()` should run.

        At the 20% default that is one rebuild per fifth of the index removed or replaced.
        """
        return self.removed_slots > COMPACT_REMOVED_FRACTION * len(self._live)

    def compact(self, *, flat_max_items: int | None = None) -> None:
        """Rebuild the HNSW graph from the live vectors alone, dropping every tombstone.

        With `flat_max_items`, the index is rebuilt exact (flat) when no more vectors than that are
        left, as `build` chooses: a catalog that shrank below the limit is searched exactly again.
        Slow: 21 s at 100k vectors, 333 s at 1M on 2 cores (HNSW M32, efConstruction 80), so run
        it from a background task with a long time limit, never inside a request.
        """
        self._writable()
        if self.removed_slots:
            hnsw = flat_max_items is None or len(self) > flat_max_items
            self._rebuild(hnsw=hnsw, reason=f"{self.removed_slots} removed vectors")

    def search(self, queries: NDArray[np.float32], k: int) -> list[list[IndexHit]]:
        """The `k` nearest ids of each query, best first; ties broken by id for stable pages."""
        if len(self) == 0 or k <= 0:
            return [[] for _ in range(len(queries))]
        queries = np.ascontiguousarray(queries, dtype=np.float32)
        # Searched below the id map, on slots: the selector skips tombstoned slots inside the graph
        # walk, so FAISS still fills k results from live vectors.
        params = self._params(k)
        scores, slots = self._index.index.search(queries, min(k, len(self)), params=params)
        return [self._hits(row_scores, row_slots) for row_scores, row_slots in zip(scores, slots, strict=True)]

    def search_among(self, query: NDArray[np.float32], k: int, ids: NDArray[np.int64]) -> list[IndexHit]:
        """The `k` nearest vectors of `ids` only (a refine's matching photos), best first.

        Filtered inside the search by a FAISS selector on slots, so the `k` come from the matching
        vectors however far down the whole catalog's ranking they sit. Up to SCAN_AMONG_MATCHES_PER_ROOT
        times the root of the index's size, they are compared with the query one by one (exact). More
        are walked in the HNSW graph, which skips non-matching nodes in its results but still walks
        through them, so it explores `k` divided by the matching share (up to FILTERED_EF_SEARCH_MAX)
        to find `k` of them.
        """
        allowed = np.isin(self._slot_ids, np.asarray(ids, dtype=np.int64)) & self._live
        matching = int(np.count_nonzero(allowed))
        if matching == 0 or k <= 0:
            return []
        bitmap = np.packbits(allowed, bitorder="little")
        selected = faiss.IDSelectorBitmap(len(bitmap), faiss.swig_ptr(bitmap))  # its size in bytes
        inner = faiss.downcast_index(self._index.index)
        searched, params = inner, faiss.SearchParameters(sel=selected)
        scan_most = SCAN_AMONG_MATCHES_PER_ROOT * math.sqrt(len(self._slot_ids))
        if isinstance(inner, faiss.IndexHNSW) and matching <= scan_most:
            searched = faiss.downcast_index(inner.storage)  # the graph's vectors alone, scanned
        elif isinstance(inner, faiss.IndexHNSW):
            wanted = max(k, inner.hnsw.efSearch) * len(self._slot_ids) / matching
            params = faiss.SearchParametersHNSW(efSearch=int(min(wanted, FILTERED_EF_SEARCH_MAX)), sel=selected)
        query = np.ascontiguousarray(query.reshape(1, -1), dtype=np.float32)
        scores, slots = searched.search(query, min(k, matching), params=params)
        return self._hits(scores[0], slots[0])

    def _hits(self, scores: NDArray[np.float32], slots: NDArray[np.int64]) -> list[IndexHit]:
        """One query's results as photo ids, best first, ties broken by id for stable pages."""
        hits = [
            IndexHit(int(self._slot_ids[slot]), float(score))
            for score, slot in zip(scores, slots, strict=True)
            if slot >= 0
        ]
        return sorted(hits, key=lambda hit: (-round(hit.score, 6), hit.id))

    def write(self, path: Path, *, tombstones: NDArray[np.int64] | None = None) -> None:
        """Write one file: the FAISS index, then the tombstones, the stamps and the trailer (index_file).

        `tombstones` replace its own: a delta's file holds the slots of its base that it removes.
        """
        removed = np.flatnonzero(~self._live) if tombstones is None else tombstones
        index_file_write(path, self._index, removed=removed, stamps=self._stamps)

    @classmethod
    def read(cls, path: Path, version: str, *, mapped: bool = False) -> VectorIndex:
        """Read an index file, or one in an earlier format; with `mapped`, memory-map its vectors (read-only).

        Raises IndexUnreadable when it is missing or corrupt.
        """
        contents = index_contents_read(path, version, mapped=mapped)
        return cls(
            contents.index.d, contents.index, version, contents.removed, stamps=contents.stamps, mapped=contents.mapped
        )

    def _writable(self) -> None:
        if self.mapped:
            raise IndexReadOnly(f"index {self.version} is memory-mapped for searching; edit a copy read unmapped")

    def _live_slots(self, ids: NDArray[np.int64]) -> NDArray[np.int64]:
        """The live slots holding any of `ids`, in order."""
        return np.flatnonzero(np.isin(self._slot_ids, np.asarray(ids, dtype=np.int64)) & self._live)

    def _remove_lazily(self, ids: NDArray[np.int64]) -> int:
        """Drop ids from a flat index, tombstone them in an HNSW one; returns how many ids were present."""
        slots = self._live_slots(ids)
        if len(slots) == 0:
            return 0
        present = np.unique(self._slot_ids[slots])
        if self.kind == "flat":
            # FAISS keeps the remaining vectors in their order, so the stamps follow by the same mask.
            self._stamps = self._stamps[~np.isin(self._slot_ids, present)]
            self._index.remove_ids(faiss.IDSelectorBatch(present))
            self._slot_ids = faiss.vector_to_array(self._index.id_map).astype(np.int64)
            self._live = np.ones(len(self._slot_ids), dtype=bool)
        else:
            self.hide_slots(slots)
        self._edited()
        return len(present)

    def _rebuild(self, *, hnsw: bool, reason: str) -> None:
        started = time.perf_counter()
        total = len(self._live)
        live = np.flatnonzero(self._live)
        storage = faiss.downcast_index(self._index.index)
        if isinstance(storage, faiss.IndexHNSW):
            storage = faiss.downcast_index(storage.storage)
        index = self._empty(self.dim, hnsw=hnsw)
        # In chunks: the stored vectors (float32 or float16) are decoded a chunk at a time, so a rebuild
        # at a million photos never holds a second full float32 copy (5 GB) beside the old index.
        for start in range(0, total, REBUILD_CHUNK):
            count = min(REBUILD_CHUNK, total - start)
            keep = self._live[start : start + count]
            if keep.any():
                vectors = storage.reconstruct_n(start, count)[keep]
                index.add_with_ids(
                    np.ascontiguousarray(vectors), np.ascontiguousarray(self._slot_ids[start : start + count][keep])
                )
        self._index = index
        self._slot_ids = self._slot_ids[live]
        self._stamps = self._stamps[live]
        self._live = np.ones(len(live), dtype=bool)
        self._edited()
        logger.info(
            "rebuilt index as %s (%s): %d vectors in %.2fs",
            self.kind, reason, len(live), time.perf_counter() - started,
        )

    def _edited(self) -> None:
        self.changed = True
        self._search_params = None

    def _params(self, k: int) -> faiss.SearchParameters | None:
        """Search parameters: skip tombstoned slots, and let HNSW explore at least `k` candidates.

        FAISS's HNSW returns k results even when its efSearch is below k, but only as good as efSearch
        allows (measured with faiss 1.15: top-10 recall the same for k=200 as for k=10), so the site's
        200 candidates need efSearch >= 200.
        """
        inner = faiss.downcast_index(self._index.index)
        is_hnsw = isinstance(inner, faiss.IndexHNSW)
        if not self.removed_slots and not (is_hnsw and k > inner.hnsw.efSearch):
            return None
        if self.removed_slots and self._search_params is None:
            # The Python objects are kept together: FAISS holds raw pointers to the inner selectors.
            batch = faiss.IDSelectorBatch(np.flatnonzero(~self._live).astype(np.int64))
            self._search_params = (faiss.IDSelectorNot(batch), batch)
        skip = self._search_params[0] if self.removed_slots else None
        if is_hnsw:  # HNSW parameters replace the index's own efSearch
            explored = max(k, inner.hnsw.efSearch)
            if self.removed_slots > len(self):
                # Mostly tombstones (a mass deletion, until its compaction has run): the walk skips them
                # in its results, not in its steps, and found 60 of 200 at 98% removed. Explore as
                # search_among does for the same share of matching vectors.
                explored = int(min(explored * len(self._slot_ids) / max(len(self), 1), FILTERED_EF_SEARCH_MAX))
            params = faiss.SearchParametersHNSW(efSearch=explored)
        else:
            params = faiss.SearchParameters()
        if skip is not None:
            params.sel = skip
        return params


def index_contents_read(
    path: Path, version: str, *, mapped: bool, removed_within: int | None = None
) -> IndexFileContents:
    """An index file's contents (index_file_read), or IndexUnreadable naming `version` when it is missing or corrupt."""
    try:
        return index_file_read(path, mapped=mapped, removed_within=removed_within)
    # faiss reports truncated files as RuntimeError; a short header or a bad count as ValueError
    except (OSError, RuntimeError, ValueError) as exc:
        raise IndexUnreadable(f"index {version} at {path} cannot be read: {str(exc)[:200]}") from None


def _stamps_or_unknown(stamps: NDArray[np.int64] | None, count: int) -> NDArray[np.int64]:
    if stamps is None:
        return np.full(count, UNKNOWN_STAMP, dtype=np.int64)
    stamps = np.asarray(stamps, dtype=np.int64)
    if stamps.shape != (count,):
        raise ValueError(f"expected {count} stamps, got shape {stamps.shape}")
    return stamps
