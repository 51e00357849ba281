"""Tagged photos reach the index through coalesced syncs; a grown index turns HNSW and removes lazily."""

from __future__ import annotations

import fcntl

import numpy as np
import pytest

from catalog.models import Photo
from catalog.services.index import index_matches_catalog, index_sync
from catalog.services.tagging import photo_tag
from recognition.index import SYNC_LOCK_FILE
from recognition.services import index_store_get

pytestmark = pytest.mark.django_db


def indexed_ids() -> set[int]:
    return set(index_store_get().load().ids().tolist())


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
