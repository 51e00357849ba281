"""Keep the vector index in step with the catalog's stored embeddings.

The database is the source of truth. Whatever a crash left the index holding (a tagged photo
missing because a worker died between its commit and the index write, a deleted photo still
there, an unreadable file), `index_repair` brings it back in step; processes call it on start.

Newly tagged, re-tagged and deleted photos reach the index through `index_sync`, which adds every
tagged photo the index lacks, replaces every vector older than its photo's embedding and drops every
id no longer tagged in one publish, and coalesces overlapping calls: each sync reads every tagged
photo's id and tagging time, so one per photo would cost O(n) each as the catalog grows. Over an HNSW
index a publish writes only a delta of the edits since the base file was written
(recognition.index_layers); once that delta is due a merge, the same background task as compaction
folds it into a new base.
Deletions go through it too (catalog/signals.py), so no request waits on the index's writer lock.

Each vector carries its photo's `tagged_at` as a stamp (microseconds since the epoch), which every
writer of an embedding sets with it (tagging, `retag`). A vector whose stamp differs from its row's
is out of date, whoever published it and in whatever order: a rebuild that read an embedding just
before a re-tag replaced it, say. Comparing stamps costs one query of ids and times, no embedding
read, so every sync and `index_repair` does it. A vector damaged in a way that keeps its stamp
would need every embedding read back (5 KB a photo) to be seen; `index_rebuild` is the cure for that.

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
from datetime import datetime

import numpy as np
from django.conf import settings
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnavailable
from numpy.typing import NDArray

from catalog.embedding_blobs import embedding_from_blob
from catalog.models import Photo
from catalog.services.index_stamps import photo_index_stamp, tagged_photo_stamps
from catalog.services.stored_embeddings import photos_fail_damaged_embeddings
from recognition.index import UNKNOWN_STAMP, IndexUnreadable, VectorIndex
from recognition.index_layers import LayeredIndex
from recognition.index_store import IndexStore
from recognition.services import EMBEDDING_DIM, index_store_get

logger = logging.getLogger(__name__)

# Embeddings read per query during a rebuild: 2,000 x 5 KB = 10 MB per batch.
REBUILD_BATCH_PHOTOS = 2000
# A queued sync not started after this long counts as lost, and the next tagging queues another.
SYNC_QUEUED_STALE_S = 120.0
# A tagging syncs the index itself once the last sync ended this many times as long ago as it took.
SYNC_REST_FACTOR = 9.0
# A queued sync that found another process syncing looks again this much later (index_sync_queued_run).
SYNC_RECHECK_S = 60.0
# Processes that find the index unreadable queue its repair at most this often between them: every
# tagging's sync finds it so until the rebuild (minutes at a million photos) is published.
REPAIR_REQUEUE_S = 60.0


def index_sync() -> bool:
    """Bring the published index in step with the tagged photos, coalescing with concurrent calls.

    Call after committing a photo's embedding (a first or a new one) or a photo's deletion. If another process is
    syncing, returns at once and that process picks the change up (recognition.index_store.IndexStore.sync).
    Returns whether this call did the sync; either way every photo committed before the call gets
    indexed, and every photo deleted before it leaves the index. Queues a compaction when the index
    it published has too many tombstones.
    """
    try:
        ran, _ = _index_sync_with(_index_reconcile)
    except IndexUnreadable as exc:
        _index_repair_queue(exc.message)
        raise
    return ran


def _index_repair_queue(reason: str) -> None:
    """Queue `index_repair`, which rebuilds an unreadable index; at most once per REPAIR_REQUEUE_S.

    Until the rebuild, no photo tagged, re-tagged or deleted reaches search: before, nothing rebuilt
    it until a worker restarted (its start-up repair) or someone ran `repair_index`.
    """
    from catalog.tasks import repair_index as repair_index_task

    if not index_store_get().repair_queue_claim(within_s=REPAIR_REQUEUE_S):
        return
    logger.error("%s; queuing a repair, which rebuilds the index from the database", reason)
    try:
        repair_index_task.delay()
    except BrokerUnavailable as exc:
        logger.warning("could not queue the index repair (%s); run manage.py repair_index", exc)


def index_sync_soon(*, queue: str | None = None) -> None:
    """Sync now if the last sync is long enough ago, else queue one on `queue` INDEX_SYNC_DELAY_S from
    now (unless one is queued already).

    For a photo's new embedding in a worker (a first one or a re-tag). Each sync reads every tagged
    photo's id and tagging time (0.4 s at 100k photos on SQLite, 0.6 s at a million on PostgreSQL),
    so one per photo would cost more than tagging it. Here a worker syncs itself when no sync round
    is running and the last one ended at least INDEX_SYNC_DELAY_S ago and SYNC_REST_FACTOR times as
    long as it took (compactions aside), so these syncs take at most a tenth of its time; the photos
    tagged in between wait for the next such sync, or for the queued one (which runs when the worker
    has time to spare, or after its backlog, so it is not held back as well). Queued alone, a sync
    waited behind every tagging queued before it: nothing of a bulk import was searchable until the
    whole import was tagged. With eager tasks (development, tests) a queued sync runs at once.
    """
    store = index_store_get()
    in_process = _queued_syncs_run_here()
    # The photo is stored: its tagging must not fail for the index (unreadable, a full disk).
    if store.sync_rested(least_s=settings.INDEX_SYNC_DELAY_S, factor=SYNC_REST_FACTOR):
        try:
            if index_sync():
                return
        except Exception:
            logger.exception("could not sync the index after tagging%s", "" if in_process else "; queuing a sync")
            if in_process:
                return  # a queued sync would fail the same way, here
    try:
        _index_sync_queue(store, countdown=settings.INDEX_SYNC_DELAY_S, queue=queue)
    except BrokerUnavailable as exc:
        # A retry of the tagging would need the broker too, and Celery drops a task whose retry it cannot send.
        logger.warning("could not queue an index sync (%s); syncing now instead", exc)
        index_sync()
    except Exception:
        if not in_process:
            raise
        logger.exception("could not sync the index after tagging")


def index_sync_queue_forget() -> None:
    """Forget a queued sync (on worker start): one queued by a worker that died may never run soon.

    Its message comes back only after the broker's visibility timeout; until then the mark would
    keep new taggings from queueing their own sync. A duplicate sync costs one reconcile.
    """
    index_store_get().sync_queue_clear()


def index_sync_queued_run(*, queue: str | None = None) -> bool:
    """The queued sync: clear the mark first (an edit from now on queues the next one), then sync.

    When another process holds the sync, it serves this request before it lets go; but if it dies
    first (a compaction killed at its time limit, say), nothing else would until the next edit. So
    the request is looked at again SYNC_RECHECK_S later, from `queue`.
    """
    store = index_store_get()
    store.sync_queue_clear()
    ran = index_sync()
    if not ran and store.sync_pending() and not _queued_syncs_run_here():  # here, it would recurse
        _index_sync_queue(store, countdown=SYNC_RECHECK_S, queue=queue)
    return ran


def _queued_syncs_run_here() -> bool:
    """Whether a queued sync runs in this process, at once (eager tasks: development, tests)."""
    from catalog.tasks import sync_index as sync_index_task

    return sync_index_task.app.conf.task_always_eager


def _index_sync_queue(store: IndexStore, *, countdown: float, queue: str | None) -> None:
    """Queue the `sync_index` task, unless one is queued already; a send that fails leaves no mark."""
    from catalog.tasks import sync_index as sync_index_task

    if store.sync_queued(within_s=SYNC_QUEUED_STALE_S):
        return
    store.sync_queue_mark()
    try:
        sync_index_task.apply_async(countdown=countdown, queue=queue)
    except BaseException:
        store.sync_queue_clear()  # or every tagging would count on a sync never sent, for SYNC_QUEUED_STALE_S
        raise


def index_compact() -> bool:
    """Fold the published index's delta into a new base and rebuild its graph without tombstones,
    each when due, then reconcile it with the database.

    Slow (a merge takes 17 s at 1M photos, a rebuild of the graph 333 s, on 2 cores): runs from the
    `compact_index` task. The new base is built on a private copy, holding no lock, so syncs go on
    publishing newly tagged photos meanwhile; before, the compaction ran inside a sync round and
    nothing reached search for its whole run. Then it waits for the sync, takes the new base and
    reconciles it with the database, which brings back what was published meanwhile. One
    compaction at a time (with rebuilds, the same claim); compacts only when still due, so a
    duplicate task costs one reconcile. Returns whether this call ran.
    """
    store = _index_store_of_this_call()
    with store.rebuilding() as claimed:
        if not claimed:
            logger.info("another process is compacting or rebuilding the index; leaving it to that one")
            return False
        copy = store.snapshot()
        if not (copy.compaction_due or copy.merge_due):  # a duplicate task: one reconcile round
            ran, _ = _index_sync_with(_index_reconcile, timed=False)
            return ran
        started = time.perf_counter()
        copy.compact(flat_max_items=settings.FLAT_INDEX_MAX_ITEMS)
        logger.info("index compacted outside the lock in %.1fs; bringing it in", time.perf_counter() - started)
        rebased: list[bool] = []

        def update(index: LayeredIndex) -> None:
            if not rebased:  # the first round only: a later one serves requests left meanwhile
                index.rebase(copy.base)
                rebased.append(True)
            _index_reconcile(index)

        ran, _ = _index_sync_with(update, timed=False, wait=True)
        return ran


def index_rebuild(*, progress: Callable[[int], None] | None = None) -> LayeredIndex | VectorIndex:
    """Rebuild the index from every tagged photo's stored embedding and publish it.

    Safe to run at any time: the new index replaces the old one in a single rename, then a sync
    catches up the photos tagged, re-tagged or deleted while it was built (their syncs went to the
    old index, which the rebuild replaced): a vector read before its photo was re-tagged carries the
    older stamp, so the sync replaces it. Takes minutes at a million photos: run it from a task or
    command. Returns the published index.
    """
    started = time.perf_counter()
    queryset = Photo.objects.filter(status=Photo.Status.TAGGED, embedding__isnull=False).order_by("pk")
    ids: list[int] = []
    stamps: list[int] = []
    vectors: list[np.ndarray] = []
    rows = queryset.values_list("pk", "embedding", "tagged_at").iterator(chunk_size=REBUILD_BATCH_PHOTOS)
    damaged: list[tuple[int, datetime | None]] = []
    for photo_id, blob, tagged_at in rows:
        vector = embedding_from_blob(blob)
        if vector is None:
            damaged.append((photo_id, tagged_at))
        else:
            ids.append(photo_id)
            stamps.append(photo_index_stamp(tagged_at))
            vectors.append(vector)
        if progress:
            progress(1)
    photos_fail_damaged_embeddings(damaged)
    store = index_store_get()
    matrix = np.vstack(vectors) if vectors else np.zeros((0, store.dim), np.float32)
    index = VectorIndex.build(
        np.array(ids, dtype=np.int64),
        matrix,
        stamps=np.array(stamps, dtype=np.int64),
        flat_max_items=settings.FLAT_INDEX_MAX_ITEMS,
    )
    store.replace(index)
    # If another process is syncing, this returns at once and its next round catches up instead.
    _, synced = _index_sync_with(_index_reconcile)
    published = synced if synced is not None else index  # an empty synced index is still the one published
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
    """Sync the index if it lacks a tagged photo's current vector; returns whether it did.

    Reads the published index, so it costs one index load: call it when there is reason to doubt
    (a redelivered task), not on every tagging. The sync reads the photo's row afresh, so a newer
    embedding committed meanwhile wins.
    """
    if photo.embedding is None:
        return False
    index = _index_store_of_this_call().load()
    stamps = index.stamps()[index.ids() == photo.pk]
    # An unknown stamp is index_repair's to replace, by a rebuild at the next process start.
    if len(stamps) == 1 and stamps[0] in (UNKNOWN_STAMP, photo_index_stamp(photo.tagged_at)):
        return False
    index_sync()
    logger.warning("photo %s was tagged but its vector was missing from the index; synced", photo.pk)
    return True


def index_matches_catalog() -> bool:
    """Whether the published index holds exactly the tagged photos of the database, each once and current."""
    return _index_matches(_index_store_of_this_call().load())


def _index_store_of_this_call() -> IndexStore:
    """A store that goes with the call, for a process that reads the index now and then (a worker).

    The process's shared store keeps the index it last loaded mapped until it loads again: after a
    compaction deleted that base file, its disk space (2.8 GB at a million photos) stayed held.
    """
    return IndexStore(settings.INDEX_DIR, EMBEDDING_DIM, mapped=settings.INDEX_MEMORY_MAP)


@dataclass(frozen=True)
class IndexRepair:
    """What `index_repair` changed: photo ids added and removed, out-of-date vectors replaced, or a rebuild."""

    added: int = 0
    removed: int = 0
    rebuilt: bool = False
    replaced: int = 0
    rebuilding_elsewhere: bool = False  # another process was rebuilding it; nothing done here
    syncing_elsewhere: bool = False  # another process was syncing (or compacting) it; its next round does this

    @property
    def changed(self) -> bool:
        return self.rebuilt or bool(self.added or self.removed or self.replaced)


def index_repair() -> IndexRepair:
    """Make the published index hold exactly the tagged photos of the database, each once and current.

    Adds missing ids from their stored embeddings, replaces vectors whose stamp is not their photo's
    tagging time (out of date), removes ids of photos no longer tagged (or deleted), de-duplicates,
    and rebuilds from scratch when the published file cannot be read or was written before vectors
    carried stamps (an upgrade): such a vector may be out of date and nothing tells, and upserting
    every vector of an HNSW graph would cost more than building it again.
    Publishes nothing when the index already matches, so it is cheap to call on every process
    start. Safe beside running workers: the database is read under the index's writer lock, so a
    photo tagged or deleted meanwhile is either seen here or written by its own task afterwards.
    While another process syncs or compacts, it returns at once, leaving that process to reconcile.

    Checks and edits through a store of its own, so the caller keeps no copy of the index in memory
    (a rebuild publishes through the process's store, like any rebuild).
    """
    store = _index_store_of_this_call()
    try:
        published = store.load()
        if len(published) and (published.stamps() == UNKNOWN_STAMP).any():
            return _index_rebuild_once(store, f"index {published.version} has vectors without stamps")
        if _index_matches(published):
            return IndexRepair()
        # Through the coalesced sync: while another process holds it (a compaction takes minutes at a
        # million photos), waiting on its lock kept a starting worker from taking any task; its next
        # round reconciles this request instead.
        rounds: list[IndexRepair] = []
        ran, _ = _index_sync_with(lambda index: rounds.append(_index_reconcile(index)), store=store)
    except IndexUnreadable as exc:
        return _index_rebuild_once(store, exc.message)
    if not ran:
        logger.info("index out of step; the process syncing it now brings it in step when done")
        return IndexRepair(syncing_elsewhere=True)
    repair = IndexRepair(
        added=sum(r.added for r in rounds),
        removed=sum(r.removed for r in rounds),
        replaced=sum(r.replaced for r in rounds),
    )
    logger.warning(
        "repaired index: %d photos added, %d out-of-date vectors replaced, %d removed",
        repair.added, repair.replaced, repair.removed,
    )
    return repair


def _index_rebuild_once(store: IndexStore, reason: str) -> IndexRepair:
    """Rebuild from the database, unless another process starting at the same time already is."""
    with store.rebuilding() as claimed:
        if not claimed:
            logger.warning("%s; another process is rebuilding the index", reason)
            return IndexRepair(rebuilding_elsewhere=True)
        logger.warning("%s; rebuilding the index from the database", reason)
        return IndexRepair(added=len(index_rebuild()), rebuilt=True)


def _index_sync_with(
    update: Callable[[LayeredIndex], object],
    *,
    timed: bool = True,
    wait: bool = False,
    store: IndexStore | None = None,
) -> tuple[bool, LayeredIndex | None]:
    """Run `update` through the store's coalesced sync, then queue a compaction if its index is due one
    (or due a merge of its delta, which the same task does).

    Returns whether this call ran, and the index its last round left published (None if it did not
    run: the process holding the sync lock then checks compaction itself).
    """
    last: list[LayeredIndex] = []

    def round_(index: LayeredIndex) -> None:
        update(index)
        last[:] = [index]

    ran = (store or index_store_get()).sync(round_, timed=timed, wait=wait)
    if last and (last[0].compaction_due or last[0].merge_due):
        _index_compaction_schedule()
    return ran, (last[0] if last else None)


def _index_compaction_schedule() -> None:
    # Imported here: catalog.tasks imports this module.
    from catalog.tasks import compact_index as compact_index_task

    def compact_index() -> None:  # named, so tests can tell what a commit queued
        try:
            compact_index_task.delay()
        except BrokerUnavailable as exc:  # the sync has published; the next one queues it again
            logger.warning("could not queue the index compaction (%s); the next sync will", exc)

    logger.info("index compaction due; queuing it")
    transaction.on_commit(compact_index)


def _index_reconcile(index: LayeredIndex) -> IndexRepair:
    """Bring `index` (a private copy, under the writer lock) in step with the database."""
    # Sorted id arrays throughout: Python sets of a million ids cost a second a sync.
    indexed, counts = np.unique(index.ids(), return_counts=True)
    tagged_ids, tagged_stamps = tagged_photo_stamps()
    duplicated = indexed[counts > 1]
    extra = np.setdiff1d(indexed, tagged_ids, assume_unique=True)
    stale = np.setdiff1d(_out_of_date_ids(index, tagged_ids, tagged_stamps), duplicated, assume_unique=True)
    absent = np.setdiff1d(tagged_ids, indexed, assume_unique=True)
    index.remove(np.union1d(extra, duplicated))
    ordered = np.union1d(np.union1d(absent, duplicated), stale).tolist()
    for start in range(0, len(ordered), REBUILD_BATCH_PHOTOS):
        rows = Photo.objects.filter(
            pk__in=ordered[start : start + REBUILD_BATCH_PHOTOS],
            status=Photo.Status.TAGGED,
            embedding__isnull=False,
        ).values_list("pk", "embedding", "tagged_at")
        read = [(pk, embedding_from_blob(blob), tagged_at) for pk, blob, tagged_at in rows]
        photos_fail_damaged_embeddings([(pk, tagged_at) for pk, vector, tagged_at in read if vector is None])
        read = [row for row in read if row[1] is not None]
        if read:
            index.add(  # an upsert: an out-of-date vector is tombstoned, as a deleted one is
                np.array([pk for pk, _, _ in read], dtype=np.int64),
                np.vstack([vector for _, vector, _ in read]),
                stamps=np.array([photo_index_stamp(tagged_at) for _, _, tagged_at in read], dtype=np.int64),
                flat_max_items=settings.FLAT_INDEX_MAX_ITEMS,
            )
    return IndexRepair(added=len(absent), removed=len(extra), replaced=len(stale))


def _out_of_date_ids(
    index: LayeredIndex, tagged_ids: NDArray[np.int64], tagged_stamps: NDArray[np.int64]
) -> NDArray[np.int64]:
    """Ids of tagged photos whose indexed vector carries a known stamp other than the row's (`tagged_ids`
    sorted), sorted, each once.

    Unknown stamps (an index from before stamps) are left to `index_repair`, which rebuilds such an
    index at every process start: a sync that replaced them would upsert every vector of the graph.
    """
    ids, stamps = index.ids(), index.stamps()
    if len(tagged_ids) == 0:
        return np.zeros(0, dtype=np.int64)
    positions = np.minimum(np.searchsorted(tagged_ids, ids), len(tagged_ids) - 1)
    tagged = tagged_ids[positions] == ids
    stale = tagged & (stamps != UNKNOWN_STAMP) & (stamps != tagged_stamps[positions])
    return np.unique(ids[stale])


def _index_matches(index: LayeredIndex) -> bool:
    ids = index.ids()
    tagged_ids, tagged_stamps = tagged_photo_stamps()
    return (
        np.array_equal(np.sort(ids), tagged_ids)  # the same ids, each once (`tagged_ids` is sorted and unique)
        and not (index.stamps() == UNKNOWN_STAMP).any()  # may be out of date, and nothing tells
        and not len(_out_of_date_ids(index, tagged_ids, tagged_stamps))
    )
