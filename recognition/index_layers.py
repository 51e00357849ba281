"""The published index as two layers: a large HNSW base searched in place, and a small delta beside it.

Publishing used to rewrite the whole index file for every batch of photos tagged: at a million photos
a 2.8 GB file, about 7 s, and a 2.6 GB private copy of the vectors in the worker, so newly tagged
photos became searchable later the larger the catalog. Over an HNSW base, edits now go to a delta:
the vectors added since the base was written (searched exactly, a flat index) and the base's slots
removed since (tombstones). A publish writes the delta alone while the base stays as it is, in one
file that every process keeps mapped. Once the delta passes MERGE_DUE_FRACTION of the base (within
MERGE_DUE_LEAST and MERGE_DUE_MOST), `merge_due` says so and the owner folds it into a new base from
a background task, as it compacts tombstones: the whole rewrite then happens once per thousands of
photos, not once per batch.

A flat (exact) base is small by construction (FLAT_INDEX_MAX_ITEMS, 10,000 by default: 50 MB), so it
is edited and rewritten whole as before, and turns HNSW inline when it outgrows that limit.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from numpy.typing import NDArray

from recognition.index import IndexHit, IndexReadOnly, VectorIndex

# A delta past this share of its base's slots, counting its vectors and tombstones, is due a merge,
# but never below the least nor above the most of these counts. A delta is searched exactly, beside
# the base: a full one (5,000 vectors) added 2.7 ms p50 to a search of a million on a 2-core AMD Zen 3
# (bench/index_publish.py), and merging it costs a whole rewrite (17 s there) in a background task.
MERGE_DUE_FRACTION = 0.05
MERGE_DUE_LEAST = 1_000
MERGE_DUE_MOST = 5_000


class LayeredIndex:
    """A base VectorIndex with a delta of later edits: what the store loads, edits and publishes.

    Searches, `ids()` and `len()` see both layers as one index. Only a copy from `IndexStore.editing`
    is `editable`; it re-reads its base privately (`read_base_private`) when the base itself must
    change (a flat base's edit, a merge, a compaction). A loaded copy shares its base with every other
    search of the process, so editing it raises IndexReadOnly.
    """

    def __init__(
        self,
        base: VectorIndex,
        *,
        base_version: str = "",
        delta: VectorIndex | None = None,
        removed: NDArray[np.int64] | None = None,
        version: str = "",
        editable: bool = False,
        read_base_private: Callable[[], VectorIndex] | None = None,
    ) -> None:
        self.version = version
        self.base_version = base_version
        self.dim = base.dim
        self.editable = editable
        self._base_removed = base.tombstoned()  # what the base's own file tombstones
        # Tombstones of our own over a base that may be shared: its vectors and graph are not copied.
        self._base = base.view()
        if removed is not None:  # slots of the base, checked against it when the delta's file was read
            self._base.hide_slots(np.asarray(removed, dtype=np.int64))
        self._delta = delta if delta is not None else VectorIndex(self.dim)
        self._read_base_private = read_base_private
        self.base_changed = False  # the base itself was edited: publish it whole
        self._delta_changed = False

    @property
    def changed(self) -> bool:
        return self.base_changed or self._delta_changed

    @property
    def mapped(self) -> bool:
        return self._base.mapped

    @property
    def kind(self) -> str:
        return self._base.kind

    def __len__(self) -> int:
        return len(self._base) + len(self._delta)

    @property
    def removed_slots(self) -> int:
        return self._base.removed_slots

    def ids(self) -> NDArray[np.int64]:
        return np.concatenate([self._base.ids(), self._delta.ids()])

    def stamps(self) -> NDArray[np.int64]:
        """The stamps of the live vectors, in the order of `ids()`."""
        return np.concatenate([self._base.stamps(), self._delta.stamps()])

    @property
    def base(self) -> VectorIndex:
        """The base with every tombstone applied: what a whole publish writes (for the store only)."""
        return self._base

    @property
    def delta(self) -> VectorIndex:
        """The vectors added since the base was written (flat, exact; for the store only)."""
        return self._delta

    def delta_removed(self) -> NDArray[np.int64]:
        """The base slots removed since the base was written."""
        return np.setdiff1d(self._base.tombstoned(), self._base_removed, assume_unique=True)

    @property
    def delta_size(self) -> int:
        """Vectors and base tombstones in the delta (0 once merged, and always 0 over a flat base)."""
        return len(self._delta) + len(self.delta_removed())

    def add(
        self,
        ids: NDArray[np.int64],
        vectors: NDArray[np.float32],
        *,
        stamps: NDArray[np.int64] | None = None,
        flat_max_items: int | None = None,
    ) -> None:
        """Add or replace vectors (an upsert, as VectorIndex.add): into the delta over an HNSW base."""
        if len(ids) == 0:
            return
        if self._edits_base():
            self._base.add(ids, vectors, stamps=stamps, flat_max_items=flat_max_items)
            self.base_changed = self.base_changed or self._base.changed  # a merge may have set it already
            return
        if self._base.hide(ids):
            self._delta_changed = True
        self._delta.add(ids, vectors, stamps=stamps)
        self._delta_changed = True

    def remove(self, ids: NDArray[np.int64]) -> int:
        """Remove ids from both layers; returns how many ids were present."""
        ids = np.asarray(ids, dtype=np.int64)
        if len(ids) == 0:
            return 0  # without reading a flat base privately
        if self._edits_base():
            removed = self._base.remove(ids)
            self.base_changed = self.base_changed or self._base.changed  # a merge may have set it already
            return removed
        present = np.union1d(self._base.live_ids_among(ids), self._delta.live_ids_among(ids))
        if len(present):
            self._base.hide(ids)
            self._delta.remove(ids)
            self._delta_changed = True
        return len(present)

    @property
    def merge_due(self) -> bool:
        """Whether the delta has grown enough to fold into a new base (`compact` does it)."""
        share = MERGE_DUE_FRACTION * self._base.slots
        return self.delta_size > min(max(share, MERGE_DUE_LEAST), MERGE_DUE_MOST)

    @property
    def compaction_due(self) -> bool:
        """Whether the base's tombstones call for rebuilding its graph (VectorIndex.compaction_due)."""
        return self._base.compaction_due

    def compact(self, *, flat_max_items: int | None = None) -> None:
        """Fold the delta into a new base, then rebuild the base's graph if its tombstones call for it.

        Merging costs a private read of the base and the graph insertion of the delta's vectors
        (seconds at a million photos); compacting, minutes. Run from a background task.
        """
        self.merge(flat_max_items=flat_max_items)
        if self._base.compaction_due:
            self._writable_base()
            self._base.compact(flat_max_items=flat_max_items)
            self._base_removed = self._base.tombstoned()
            self.base_changed = True

    def rebase(self, base: VectorIndex) -> None:
        """Take `base`, built from an earlier copy of this index (a compaction outside the writer lock),
        as the base, with no delta: published whole. The edits published since that copy are not in
        it: the caller brings them back in (the sync's reconcile, from the database)."""
        self._editable()
        self._base = base
        self._read_base_private = None
        self._delta = VectorIndex(self.dim)
        self._base_removed = base.tombstoned()
        self.base_changed = True

    def merge(self, *, flat_max_items: int | None = None) -> None:
        """Fold the delta into the base, which is then published whole."""
        if not self.delta_size:
            return
        ids, vectors, stamps = self._delta.live_entries()
        self._writable_base()
        self._base.add(ids, vectors, stamps=stamps, flat_max_items=flat_max_items)
        self._delta = VectorIndex(self.dim)
        self._base_removed = self._base.tombstoned()
        self.base_changed = True

    def search(self, queries: NDArray[np.float32], k: int) -> list[list[IndexHit]]:
        """The `k` nearest ids of each query over both layers, best first (ties by id)."""
        base_rows = self._base.search(queries, k)
        if not len(self._delta):
            return base_rows
        delta_rows = self._delta.search(queries, k)
        return [_merged(base, delta, k) for base, delta in zip(base_rows, delta_rows, strict=True)]

    def search_among(self, query: NDArray[np.float32], k: int, ids: NDArray[np.int64]) -> list[IndexHit]:
        """The `k` nearest vectors of `ids` only over both layers (VectorIndex.search_among)."""
        base_hits = self._base.search_among(query, k, ids)
        if not len(self._delta):
            return base_hits
        return _merged(base_hits, self._delta.search_among(query, k, ids), k)

    def _edits_base(self) -> bool:
        """Whether edits go to the base itself: a flat (small) base is rewritten whole on each publish,
        and so is a base this edit already changed (turned HNSW, merged, compacted)."""
        self._editable()
        if self._base.kind == "hnsw" and not self.base_changed:
            return False
        self._writable_base()
        return True

    def _editable(self) -> None:
        if not self.editable:
            raise IndexReadOnly(f"index {self.version} is loaded for searching; edit a copy from IndexStore.editing")

    def _writable_base(self) -> None:
        """Make the base a private copy of our own, read from its file the first time (edits replace it)."""
        self._editable()
        if self._read_base_private is None:
            return  # built in this process (empty, or by a rebuild): ours already
        base = self._read_base_private()
        base.hide_slots(self._base.tombstoned())
        self._base = base
        self._read_base_private = None


def _merged(first: list[IndexHit], second: list[IndexHit], k: int) -> list[IndexHit]:
    return sorted(first + second, key=lambda hit: (-round(hit.score, 6), hit.id))[:k]
