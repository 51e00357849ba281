"""Keep the vector index in step with the catalog's stored embeddings.

The database is the source of truth. Whatever a crash left the index holding (a tagged photo
missing because a worker died between its commit and the index write, a deleted photo still
there, an unreadable file), `index_repair` brings it back in step; processes call it on start.

Newly tagged photos reach the index through `index_sync`, which adds every tagged photo the index
lacks in one publish and coalesces overlapping calls: a publish rewrites the whole index file
(about 2 KB per photo), so one per tagged photo would cost O(n) each as the catalog grows.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.conf import settings

from catalog.models import Photo
from recognition.index import IndexStore, IndexUnreadable, VectorIndex
from recognition.services import EMBEDDING_DIM, index_store_get

logger = logging.getLogger(__name__)

# Embeddings read per query during a rebuild: 2,000 x 5 KB = 10 MB per batch.
REBUILD_BATCH_PHOTOS = 2000


def index_add_photo(*, photo: Photo) -> None:
    """Upsert one tagged photo's embedding into the published index."""
    vector = photo.embedding_vector()
    if vector is None:
        return
    with index_store_get().editing() as index:
        index.add(
            np.array([photo.pk], dtype=np.int64), vector.reshape(1, -1), flat_max_items=settings.FLAT_INDEX_MAX_ITEMS
        )


def index_sync() -> bool:
    """Bring the published index in step with the tagged photos, coalescing with concurrent calls.

    Call after committing a photo's first embedding. If another process is syncing, returns at
    once and that process picks the photo up (recognition.index.IndexStore.sync). Returns whether
    this call did the sync; either way every photo committed before the call gets indexed.
    """
    return index_store_get().sync(_index_reconcile)


def index_remove_photos(*, photo_ids: list[int]) -> None:
    """Drop photos from the published index (ids not in it are ignored).

    Cheap on an HNSW index too: the vectors are only marked removed (recognition.index.VectorIndex).
    """
    with index_store_get().editing() as index:
        removed = index.remove(np.array(photo_ids, dtype=np.int64))
    logger.info("removed %d of %d photos from the index", removed, len(photo_ids))


def index_rebuild(*, progress: Callable[[int], None] | None = None) -> VectorIndex:
    """Rebuild the index from every tagged photo's stored embedding and publish it.

    Safe to run at any time: the new index replaces the old one in a single rename.
    """
    started = time.perf_counter()
    queryset = Photo.objects.filter(status=Photo.Status.TAGGED, embedding__isnull=False).order_by("pk")
    ids: list[int] = []
    vectors: list[np.ndarray] = []
    for photo_id, blob in queryset.values_list("pk", "embedding").iterator(chunk_size=REBUILD_BATCH_PHOTOS):
        ids.append(photo_id)
        vectors.append(np.frombuffer(bytes(blob), dtype=np.float32))
        if progress:
            progress(1)
    store = index_store_get()
    matrix = np.vstack(vectors) if vectors else np.zeros((0, store.dim), np.float32)
    index = VectorIndex.build(
        np.array(ids, dtype=np.int64), matrix, flat_max_items=settings.FLAT_INDEX_MAX_ITEMS
    )
    store.replace(index)
    logger.info("rebuilt index: %d photos, %s, %.2fs", len(ids), index.kind, time.perf_counter() - started)
    return index


def index_photo_ensure(*, photo: Photo) -> bool:
    """Add a tagged photo's vector if the published index lacks it; returns whether it was added.

    Reads the published index, so it costs one index load: call it when there is reason to doubt
    (a redelivered task), not on every tagging.
    """
    if photo.embedding is None or photo.pk in set(index_store_get().load().ids().tolist()):
        return False
    index_add_photo(photo=photo)
    logger.warning("photo %s was tagged but missing from the index; added", photo.pk)
    return True


def index_matches_catalog() -> bool:
    """Whether the published index holds exactly the tagged photos of the database, each once."""
    return _index_ids_match(index_store_get().load().ids())


@dataclass(frozen=True)
class IndexRepair:
    """What `index_repair` changed: photo ids added and removed, or a full rebuild."""

    added: int = 0
    removed: int = 0
    rebuilt: bool = False

    @property
    def changed(self) -> bool:
        return self.rebuilt or bool(self.added or self.removed)


def index_repair() -> IndexRepair:
    """Make the published index hold exactly the tagged photos of the database, each once.

    Adds missing ids from their stored embeddings, removes ids of photos no longer tagged (or
    deleted), de-duplicates, and rebuilds from scratch when the published file cannot be read.
    Publishes nothing when the index already matches, so it is cheap to call on every process
    start. Safe beside running workers: the database is read under the index's writer lock, so a
    photo tagged or deleted meanwhile is either seen here or written by its own task afterwards.

    Uses a private store, so the caller (a worker's parent process) keeps no copy in memory.
    """
    store = IndexStore(settings.INDEX_DIR, EMBEDDING_DIM)
    try:
        if _index_ids_match(store.load().ids()):
            return IndexRepair()
        with store.editing() as index:
            repair = _index_reconcile(index)
    except IndexUnreadable as exc:
        logger.warning("%s; rebuilding the index from the database", exc.message)
        return IndexRepair(added=len(index_rebuild()), rebuilt=True)
    logger.warning("repaired index: %d photos added, %d removed", repair.added, repair.removed)
    return repair


def _index_reconcile(index: VectorIndex) -> IndexRepair:
    """Bring `index` (a private copy, under the writer lock) in step with the database."""
    indexed, counts = np.unique(index.ids(), return_counts=True)
    tagged = _tagged_photo_ids()
    duplicated = set(indexed[counts > 1].tolist())
    extra = set(indexed.tolist()) - tagged
    missing = (tagged - set(indexed.tolist())) | duplicated
    index.remove(np.array(sorted(extra | duplicated), dtype=np.int64))
    ordered = sorted(missing)
    for start in range(0, len(ordered), REBUILD_BATCH_PHOTOS):
        rows = list(
            Photo.objects.filter(
                pk__in=ordered[start : start + REBUILD_BATCH_PHOTOS],
                status=Photo.Status.TAGGED,
                embedding__isnull=False,
            ).values_list("pk", "embedding")
        )
        if rows:
            index.add(
                np.array([pk for pk, _ in rows], dtype=np.int64),
                np.vstack([np.frombuffer(bytes(blob), dtype=np.float32) for _, blob in rows]),
                flat_max_items=settings.FLAT_INDEX_MAX_ITEMS,
            )
    return IndexRepair(added=len(missing - duplicated), removed=len(extra))


def _index_ids_match(ids: np.ndarray) -> bool:
    return len(ids) == len(np.unique(ids)) and set(ids.tolist()) == _tagged_photo_ids()


def _tagged_photo_ids() -> set[int]:
    return set(
        Photo.objects.filter(status=Photo.Status.TAGGED, embedding__isnull=False).values_list("pk", flat=True)
    )
