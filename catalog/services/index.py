"""Keep the vector index in step with the catalog's stored embeddings.

The database is the source of truth. Whatever a crash left the index holding (a tagged photo
missing because a worker died between its commit and the index write, a deleted photo still
there, an unreadable file), `index_repair` brings it back in step; processes call it on start.

Newly tagged and deleted photos reach the index through `index_sync`, which adds every tagged photo
the index lacks and drops every id no longer tagged in one publish, and coalesces overlapping calls:
a publish rewrites the whole index file (about 2 KB per photo), so one per photo would cost O(n)
each as the catalog grows. Deletions go through it too (catalog/signals.py), so no request waits on
the index's writer lock.

Removing from an HNSW index only tombstones the vector; once tombstones pass a fifth of the slots the
graph needs rebuilding (`compaction_due`), which takes minutes at a million photos (333 s on 2 cores).
So the edits here never compact: when they leave an index due, they queue `compact_index`, which runs
`index_compact` in a worker with a long time limit while other syncs return at once.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from django.conf import settings
from django.db import transaction

from catalog.models import Photo
from recognition.index import IndexUnreadable, VectorIndex
from recognition.index_store import IndexStore
from recognition.services import EMBEDDING_DIM, index_store_get

logger = logging.getLogger(__name__)

# Embeddings read per query during a rebuild: 2,000 x 5 KB = 10 MB per batch.
REBUILD_BATCH_PHOTOS = 2000
# A queued sync not started after this long counts as lost, and the next tagging queues another.
SYNC_QUEUED_STALE_S = 120.0


def index_add_photo(*, photo: Photo) -> None:
    """Upsert one tagged photo's embedding into the published index (a new vector for an indexed photo)."""
    vector = photo.embedding_vector()
    if vector is None:
        return
    with index_store_get().editing() as index:
        index.add(
            np.array([photo.pk], dtype=np.int64), vector.reshape(1, -1), flat_max_items=settings.FLAT_INDEX_MAX_ITEMS
        )
    # An upsert tombstones the old vector: re-tagging every photo would otherwise pile them up unseen.
    if index.compaction_due:
        _index_compaction_schedule()


def index_sync() -> bool:
    """Bring the published index in step with the tagged photos, coalescing with concurrent calls.

    Call after committing a photo's first embedding or a photo's deletion. If another process is
    syncing, returns at once and that process picks the change up (recognition.index_store.IndexStore.sync).
    Returns whether this call did the sync; either way every photo committed before the call gets
    indexed, and every photo deleted before it leaves the index. Queues a compaction when the index
    it published has too many tombstones.
    """
    ran, _ = _index_sync_with(_index_reconcile)
    return ran


def index_sync_soon(*, queue: str | None = None) -> None:
    """Queue one coalesced sync on `queue` INDEX_SYNC_DELAY_S from now, unless one is queued already.

    For a photo's first embedding in a worker. Each sync rewrites the whole index file (0.5 GB and
    about 1.5 s at 100k photos), so syncing after every photo made a single worker spend about a
    hundred times longer publishing than tagging; with the delay, the photos tagged meanwhile share
    one publish, and search finds them within seconds. With eager tasks (development, tests) the
    sync runs at once.
    """
    from catalog.tasks import sync_index as sync_index_task

    store = index_store_get()
    if store.sync_queued(within_s=SYNC_QUEUED_STALE_S):
        return
    store.sync_queue_mark()
    sync_index_task.apply_async(countdown=settings.INDEX_SYNC_DELAY_S, queue=queue)


def index_sync_queue_forget() -> None:
    """Forget a queued sync (on worker start): one queued by a worker that died may never run soon.

    Its message comes back only after the broker's visibility timeout; until then the mark would
    keep new taggings from queueing their own sync. A duplicate sync costs one reconcile.
    """
    index_store_get().sync_queue_clear()


def index_sync_queued_run() -> bool:
    """The queued sync: clear the mark first (an edit from now on queues the next one), then sync."""
    index_store_get().sync_queue_clear()
    return index_sync()


def index_compact() -> bool:
    """Reconcile the published index with the database and rebuild its graph without tombstones.

    Slow (333 s at 1M photos on 2 cores): runs from the `compact_index` task. It goes through the
    coalesced sync, so while it builds, other syncs return at once and its next round (reconcile
    only, quick) serves their requests. Compacts only when still due, so a duplicate task costs one
    reconcile. Returns whether this call ran; if another sync held the lock, that one queues the
    compaction again once it is done.
    """

    def update(index: VectorIndex) -> None:
        _index_reconcile(index)
        if index.compaction_due:
            index.compact()

    ran, _ = _index_sync_with(update)
    return ran


def index_rebuild(*, progress: Callable[[int], None] | None = None) -> VectorIndex:
    """Rebuild the index from every tagged photo's stored embedding and publish it.

    Safe to run at any time: the new index replaces the old one in a single rename, then a sync
    catches up the photos tagged or deleted while it was built (their syncs went to the old index,
    which the rebuild replaced). Takes minutes at a million photos: run it from a task or command.
    Returns the published index.
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
    # If another process is syncing, this returns at once and its next round catches up instead.
    _, synced = _index_sync_with(_index_reconcile)
    published = synced or index
    logger.info(
        "rebuilt index: %d photos read, %d published, %s, %.2fs",
        len(ids), len(published), published.kind, time.perf_counter() - started,
    )
    return published


def index_rebuild_queue() -> None:
    """Queue `index_rebuild` in a worker once the current transaction commits (the admin's button)."""
    from catalog.tasks import rebuild_index as rebuild_index_task

    transaction.on_commit(lambda: rebuild_index_task.delay())


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
    store = IndexStore(settings.INDEX_DIR, EMBEDDING_DIM, mapped=False)  # it only edits a private copy
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


def _index_sync_with(update: Callable[[VectorIndex], object]) -> tuple[bool, VectorIndex | None]:
    """Run `update` through the store's coalesced sync, then queue a compaction if its index is due one.

    Returns whether this call ran, and the index its last round left published (None if it did not
    run: the process holding the sync lock then checks compaction itself).
    """
    last: list[VectorIndex] = []

    def round_(index: VectorIndex) -> None:
        update(index)
        last[:] = [index]

    ran = index_store_get().sync(round_)
    if last and last[0].compaction_due:
        _index_compaction_schedule()
    return ran, (last[0] if last else None)


def _index_compaction_schedule() -> None:
    # Imported here: catalog.tasks imports this module.
    from catalog.tasks import compact_index as compact_index_task

    def compact_index() -> None:  # named, so tests can tell what a commit queued
        compact_index_task.delay()

    logger.info("index compaction due; queuing it")
    transaction.on_commit(compact_index)


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
