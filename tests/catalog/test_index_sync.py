"""Tagged and deleted photos reach the index through coalesced syncs; compaction and rebuilds run in tasks."""

from __future__ import annotations

import fcntl
import os
import time

import numpy as np
import pytest
from django.core.management import call_command

from catalog.models import Photo
from catalog.services.index import (
    index_compact,
    index_matches_catalog,
    index_rebuild,
    index_sync,
)
from catalog.services.tagging import photo_tag
from catalog.signals import FilesForgetOnCommit, SyncIndexOnCommit
from catalog.tasks import compact_index, rebuild_index, sync_index
from recognition import index_layers
from recognition.index_store import (
    DELTA_SEPARATOR,
    SYNC_LOCK_FILE,
    SYNC_QUEUED_FILE,
)
from recognition.services import index_store_get
from tests.catalog.index_helpers import indexed_ids

pytestmark = pytest.mark.django_db


def test_photos_tagged_while_another_process_syncs_are_all_indexed_by_its_next_round(tagged_catalog, settings):
    # given three photos not tagged yet
    fresh = list(Photo.objects.order_by("pk").values_list("pk", flat=True)[:3])
    Photo.objects.filter(pk__in=fresh).update(status=Photo.Status.PENDING, embedding=None)
    index_sync()
    assert not set(fresh) & indexed_ids()
    version = index_store_get().current_version()

    # when they are tagged while another process holds the sync lock (it is publishing)
    with open(settings.INDEX_DIR / SYNC_LOCK_FILE, "w") as other_process:
        fcntl.flock(other_process, fcntl.LOCK_EX)
        for photo_id in fresh:
            assert photo_tag(photo_id=photo_id).status == Photo.Status.TAGGED

        # then none of the taggings waited for it or published an index of its own
        assert index_store_get().current_version() == version

    # and its next round (it finds their requests before letting go) indexes all three in one publish
    assert index_sync() is True
    assert set(fresh) <= indexed_ids()
    assert index_matches_catalog()


def test_an_index_grown_past_the_flat_limit_turns_hnsw_and_deleted_photos_leave_it_lazily(
    tagged_catalog, settings, committed
):
    # given a flat index of the 20 tagged photos, one missing, and a limit of 10 photos
    lost = Photo.objects.order_by("pk").first()
    with index_store_get().editing() as index:
        index.remove(np.array([lost.pk]))
    assert index_store_get().load().kind == "flat"
    settings.FLAT_INDEX_MAX_ITEMS = 10

    # when a sync adds the missing photo
    index_sync()

    # then the index is HNSW and holds every tagged photo
    assert index_store_get().load().kind == "hnsw"
    assert index_matches_catalog()

    # and when an item is deleted, its photos are tombstoned (not rebuilt) and never found again
    item = tagged_catalog[-1]
    gone = set(item.photos.values_list("pk", flat=True))
    queries = np.vstack([photo.embedding_vector() for photo in item.photos.all()])
    with committed():
        item.delete()
    index = index_store_get().load()
    assert index.removed_slots == len(gone)
    assert index_matches_catalog()
    assert not gone & {hit.id for row in index.search(queries, 20) for hit in row}


def make_hnsw(settings) -> None:
    """Publish the tagged catalog as an HNSW index (the 20 demo photos past a flat limit of 5)."""
    settings.FLAT_INDEX_MAX_ITEMS = 5
    index_rebuild()
    assert index_store_get().load().kind == "hnsw"


def queued(callbacks: list) -> list[str]:
    """What the captured on-commit callbacks queued: "sync_index" for a deletion's, else the callback's name.

    The deleted photos' files are deleted on commit too (FilesForgetOnCommit), which queues nothing.
    """
    return [
        "sync_index" if isinstance(callback, SyncIndexOnCommit) else callback.__name__
        for callback in callbacks
        if not isinstance(callback, FilesForgetOnCommit)
    ]


def found_by_own_vector(photos: list[Photo]) -> set[int]:
    queries = np.vstack([photo.embedding_vector() for photo in photos])
    return {hit.id for row in index_store_get().load().search(queries, 20) for hit in row}


def test_over_an_hnsw_index_a_sync_publishes_a_delta_and_a_due_merge_is_queued_and_folds_it_in(
    tagged_catalog, settings, committed, monkeypatch
):
    # given an HNSW index of the 20 photos
    make_hnsw(settings)
    base_version = index_store_get().current_version()

    # when a photo is re-tagged: a sync publishes its new vector as a delta over the same base
    retagged = Photo.objects.order_by("pk").first()
    assert photo_tag(photo_id=retagged.pk, force=True).status == Photo.Status.TAGGED
    version = index_store_get().current_version()
    assert version.startswith(base_version + DELTA_SEPARATOR)
    assert index_matches_catalog()

    # and when a deletion leaves the delta past its due size (here 2 edits), the same task as a
    # compaction is queued after the publish, and runs (eagerly): the delta is folded into a new base
    monkeypatch.setattr(index_layers, "MERGE_DUE_LEAST", 2)
    with committed() as callbacks:
        Photo.objects.order_by("pk").last().delete()
    assert queued(callbacks) == ["sync_index", "compact_index"]
    merged = index_store_get().current_version()
    assert DELTA_SEPARATOR not in merged and merged != base_version
    assert index_matches_catalog()
    assert retagged.pk in found_by_own_vector([Photo.objects.get(pk=retagged.pk)])


def test_deleting_photos_queues_one_sync_on_commit_that_removes_them_from_search(tagged_catalog, committed):
    # given three indexed photos
    photos = list(Photo.objects.order_by("pk")[:3])
    gone = {photo.pk for photo in photos}
    assert gone <= found_by_own_vector(photos)

    # when they are deleted through the ORM in one transaction
    with committed() as callbacks:
        Photo.objects.filter(pk__in=gone).delete()

    # then one index sync was queued for the three (not one each, nor a blocking write) ...
    assert queued(callbacks) == ["sync_index"]
    # ... and, run eagerly on commit, it removed them: no query finds them, the index matches the catalog
    assert not gone & indexed_ids()
    assert not gone & found_by_own_vector(photos)
    assert index_matches_catalog()


def test_deletions_crossing_a_fifth_of_the_slots_queue_a_compaction_that_publishes_no_tombstones(
    tagged_catalog, settings, committed
):
    # given an HNSW index of 20 photos, from which 4 are deleted: a fifth of the slots, not past it
    make_hnsw(settings)
    ordered = list(Photo.objects.order_by("pk"))
    with committed() as callbacks:
        Photo.objects.filter(pk__in=[photo.pk for photo in ordered[:4]]).delete()
    assert queued(callbacks) == ["sync_index"]
    index = index_store_get().load()
    assert index.removed_slots == 4 and not index.compaction_due

    # when one more is deleted (5 of 20 slots tombstoned: past the fifth)
    with committed() as callbacks:
        ordered[4].delete()

    # then the sync queued a compaction after its publish, which ran (eagerly) and left no tombstone
    assert queued(callbacks) == ["sync_index", "compact_index"]
    index = index_store_get().load()
    assert index.kind == "hnsw" and index.removed_slots == 0 and len(index) == 15
    assert index_matches_catalog()
    assert not {photo.pk for photo in ordered[:5]} & found_by_own_vector(ordered[:5])
    assert set(found_by_own_vector(ordered[5:])) >= {photo.pk for photo in ordered[5:]}


def test_a_compaction_that_is_no_longer_due_publishes_nothing(tagged_catalog, settings):
    # given an HNSW index with one tombstone (a duplicate compaction task, queued twice)
    make_hnsw(settings)
    with index_store_get().editing() as index:
        index.remove(np.array([Photo.objects.order_by("pk").first().pk]))
    version = index_store_get().current_version()

    # when the compaction service runs
    assert index_compact() is True

    # then the index only had its reconcile round: the photo is back, and the tombstone stays
    index = index_store_get().load()
    assert index_matches_catalog()
    assert index.removed_slots == 1 and index.version != version


def test_a_rebuild_catches_up_photos_tagged_and_deleted_while_it_was_building(tagged_catalog, committed):
    # given a photo not tagged yet, and another one tagged and indexed
    fresh, doomed = Photo.objects.order_by("pk")[:2]
    Photo.objects.filter(pk=fresh.pk).update(status=Photo.Status.PENDING, embedding=None)
    index_sync()
    assert fresh.pk not in indexed_ids() and doomed.pk in indexed_ids()

    # when, after the rebuild has read the database, the first is tagged and the second deleted: both
    # their syncs go to the index about to be replaced
    def meanwhile(count: int) -> None:
        if Photo.objects.filter(pk=doomed.pk).exists():
            assert photo_tag(photo_id=fresh.pk).status == Photo.Status.TAGGED
            with committed():
                Photo.objects.filter(pk=doomed.pk).delete()
            assert fresh.pk in indexed_ids() and doomed.pk not in indexed_ids()

    index = index_rebuild(progress=meanwhile)

    # then the published index holds the new photo and not the deleted one
    assert fresh.pk in indexed_ids() and doomed.pk not in indexed_ids()
    assert set(index.ids().tolist()) == indexed_ids()
    assert index_matches_catalog()


def test_index_rebuild_and_compaction_tasks_get_the_long_time_limit_and_acknowledge_on_receipt(settings):
    for task in (compact_index, rebuild_index):
        assert task.time_limit == settings.INDEX_REBUILD_TIME_LIMIT
        assert 0 < task.soft_time_limit < task.time_limit
        assert task.acks_late is False
    # the sync stays under the default limit, acknowledged late and retried like tagging
    assert sync_index.time_limit == settings.CELERY_TASK_TIME_LIMIT and sync_index.acks_late is True


def test_the_admin_rebuild_button_queues_the_rebuild_which_publishes_the_catalog(
    tagged_catalog, admin_client, committed
):
    # given an index that lost a photo
    with index_store_get().editing() as index:
        index.remove(np.array([Photo.objects.order_by("pk").first().pk]))
    assert not index_matches_catalog()

    # when a merchant presses "Rebuild index" (the task runs eagerly on commit)
    with committed():
        response = admin_client.post("/admin/catalog/photo/rebuild-index/", follow=True)

    # then the page says it is rebuilding, and the rebuilt index is published
    assert "Rebuilding the index in the background" in response.content.decode()
    assert index_matches_catalog()


def test_rebuild_index_command_rebuilds_and_reports_the_published_index(tagged_catalog, capsys):
    with index_store_get().editing() as index:
        index.remove(np.array(list(indexed_ids())[:2]))

    call_command("rebuild_index", verbosity=0)

    assert capsys.readouterr().out.strip() == "index rebuilt: 20 photos, flat search"
    assert index_matches_catalog()


def test_a_tagging_while_a_sync_is_queued_leaves_the_photo_to_that_sync(tagged_catalog):
    # given a photo not tagged yet, and a sync queued a moment ago by an earlier tagging
    photo_id = Photo.objects.order_by("pk").values_list("pk", flat=True).first()
    Photo.objects.filter(pk=photo_id).update(status=Photo.Status.PENDING, embedding=None)
    index_sync()
    version = index_store_get().current_version()
    index_store_get().sync_queue_mark()

    # when the photo is tagged
    assert photo_tag(photo_id=photo_id).status == Photo.Status.TAGGED

    # then it queued nothing and published nothing: the queued sync takes it, in the same publish
    assert index_store_get().current_version() == version
    sync_index.apply()
    assert photo_id in indexed_ids()
    assert index_matches_catalog()


def test_a_queued_sync_that_never_ran_does_not_hold_up_later_taggings(tagged_catalog):
    # given a queued-sync mark left by a worker that died before running it, long ago
    photo_id = Photo.objects.order_by("pk").values_list("pk", flat=True).first()
    Photo.objects.filter(pk=photo_id).update(status=Photo.Status.PENDING, embedding=None)
    index_sync()
    store = index_store_get()
    store.sync_queue_mark()
    stale = time.time() - 3600
    os.utime(store.directory / SYNC_QUEUED_FILE, (stale, stale))

    # when the photo is tagged, then it queues (here: runs) a sync of its own
    photo_tag(photo_id=photo_id)
    assert photo_id in indexed_ids()


def retag_with_image_of(photo: Photo, other: Photo) -> np.ndarray:
    """Replace `photo`'s image with `other`'s and re-tag it, as a merchant's new upload is; returns its new vector."""
    Photo.objects.filter(pk=photo.pk).update(image=other.image.name)
    assert photo_tag(photo_id=photo.pk, force=True).status == Photo.Status.TAGGED
    new_vector = Photo.objects.get(pk=photo.pk).embedding_vector()
    assert not np.allclose(new_vector, photo.embedding_vector())
    return new_vector


def score_of(photo_id: int, query: np.ndarray) -> float | None:
    """The indexed score of `photo_id` for `query` (None when it is not among the results)."""
    hits = index_store_get().load().search(query.reshape(1, -1), 20)[0]
    return next((hit.score for hit in hits if hit.id == photo_id), None)


def test_a_photo_retagged_while_a_rebuild_reads_the_catalog_keeps_its_new_vector(tagged_catalog):
    # given a photo whose image is replaced and re-tagged while a rebuild is reading the embeddings
    target, other = Photo.objects.order_by("pk")[:2]
    new_vectors = []

    def retag_once(_count: int) -> None:
        if not new_vectors:
            new_vectors.append(retag_with_image_of(target, other))

    # when the rebuild publishes what it read (the old vector), then catches up
    index_rebuild(progress=retag_once)

    # then the index holds the new vector, not the one the rebuild read, and matches the catalog
    assert score_of(target.pk, new_vectors[0]) == pytest.approx(1.0, abs=1e-4)
    assert (score_of(target.pk, target.embedding_vector()) or 0.0) < 0.999
    assert index_matches_catalog()


def test_retagging_an_indexed_photo_rewrites_no_index_and_the_queued_sync_tombstones_its_old_vector(
    tagged_catalog, settings
):
    # given an HNSW index of the catalog, and a sync queued a moment ago by an earlier tagging
    make_hnsw(settings)
    target, other = Photo.objects.order_by("pk")[:2]
    store = index_store_get()
    version = store.current_version()
    store.sync_queue_mark()

    # when the photo is re-tagged with a new image (the admin's "Re-tag selected")
    new_vector = retag_with_image_of(target, other)

    # then the tagging published nothing itself (no rewrite of the whole index per photo) ...
    assert store.current_version() == version
    assert not index_matches_catalog()  # its vector is out of date until the queued sync
    # ... and the queued sync replaced the vector as a removal does: a tombstone and one vector added
    sync_index.apply()
    index = store.load()
    assert index.kind == "hnsw" and index.removed_slots == 1 and len(index) == 20
    assert score_of(target.pk, new_vector) == pytest.approx(1.0, abs=1e-3)
    assert index_matches_catalog()


def test_photos_tagged_while_a_compaction_builds_are_searchable_at_once_and_after_it(
    tagged_catalog, settings, committed, monkeypatch
):
    # given an HNSW index due a compaction (5 of 20 slots tombstoned), and a photo not tagged yet
    make_hnsw(settings)
    ordered = list(Photo.objects.order_by("pk"))
    fresh = ordered[-1]
    Photo.objects.filter(pk=fresh.pk).update(status=Photo.Status.PENDING, embedding=None)
    with index_store_get().editing() as index:
        index.remove(np.array([photo.pk for photo in ordered[:5]]))
    Photo.objects.filter(pk__in=[photo.pk for photo in ordered[:5]]).delete()
    index_sync()
    assert index_store_get().load().compaction_due

    # when the photo is tagged while the compaction builds its new base (minutes at a million photos)
    build = index_layers.LayeredIndex.compact
    searchable_meanwhile: list[bool] = []

    def build_with_a_tagging_meanwhile(self, **kwargs):
        build(self, **kwargs)
        assert photo_tag(photo_id=fresh.pk).status == Photo.Status.TAGGED
        index_sync()
        searchable_meanwhile.append(fresh.pk in indexed_ids())

    monkeypatch.setattr(index_layers.LayeredIndex, "compact", build_with_a_tagging_meanwhile)
    assert index_compact() is True

    # then its sync published it during the build, and the compacted index has it too, with no tombstone
    assert searchable_meanwhile == [True]
    index = index_store_get().load()
    assert index.removed_slots == 0 and fresh.pk in indexed_ids()
    assert index_matches_catalog()
