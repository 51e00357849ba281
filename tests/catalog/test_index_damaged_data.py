"""Damaged stored data never stops the index: a bad embedding fails its photo, a bad file gets rebuilt."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.models import Item, Photo
from catalog.services.index import index_rebuild, index_sync
from catalog.services.search import search_similar_to_item
from catalog.services.stored_embeddings import DAMAGED_EMBEDDING_REASON
from recognition.index import IndexUnreadable
from recognition.services import EMBEDDING_DIM, index_store_get
from tests.catalog.embedded_photos import embedded_photo, unit

pytestmark = pytest.mark.django_db

RNG = np.random.default_rng(0)


def indexed_ids() -> set[int]:
    return set(index_store_get().load().ids().tolist())


def random_photo(item: Item) -> Photo:
    return embedded_photo(item, unit(RNG.standard_normal(EMBEDDING_DIM)))


def photo_with_embedding(item: Item, blob: bytes) -> Photo:
    return Photo.objects.create(
        item=item, image="photos/x.jpg", status=Photo.Status.TAGGED, embedding=blob, embedding_model="x"
    )


DAMAGED = {
    "cut short": unit(RNG.standard_normal(EMBEDDING_DIM)).tobytes()[:-4],
    "another backbone's size": unit(RNG.standard_normal(512)).tobytes(),
    "not finite": np.full(EMBEDDING_DIM, np.nan, dtype=np.float32).tobytes(),
}


@pytest.mark.parametrize("damage", sorted(DAMAGED))
def test_a_damaged_embedding_fails_its_photo_and_the_photos_tagged_after_it_reach_search(damage):
    # given an indexed catalog, then a photo whose stored embedding cannot be read, then a good one
    item = Item.objects.create(name="Coat")
    first = random_photo(item)
    index_sync()
    damaged = photo_with_embedding(item, DAMAGED[damage])
    later = random_photo(item)

    # when the index syncs
    index_sync()

    # then the good photos are searchable, and the damaged one is failed with a reason the admin shows
    assert indexed_ids() == {first.pk, later.pk}
    damaged.refresh_from_db()
    assert (damaged.status, damaged.failure_reason) == (Photo.Status.FAILED, DAMAGED_EMBEDDING_REASON)


def test_a_rebuild_leaves_out_and_fails_a_photo_whose_embedding_is_damaged():
    item = Item.objects.create(name="Coat")
    good = random_photo(item)
    damaged = photo_with_embedding(item, DAMAGED["cut short"])

    index_rebuild()

    assert indexed_ids() == {good.pk}
    damaged.refresh_from_db()
    assert damaged.status == Photo.Status.FAILED


def test_similar_items_of_an_item_whose_embedding_is_damaged_are_none_rather_than_an_error():
    random_photo(Item.objects.create(name="Shirt"))
    index_sync()
    item = Item.objects.create(name="Coat")
    photo_with_embedding(item, DAMAGED["another backbone's size"])

    assert search_similar_to_item(item=item) == []


def test_a_sync_that_finds_the_published_file_damaged_has_the_index_rebuilt(settings):
    # given a published index whose file was then damaged on disk (bit rot, a truncated copy)
    item = Item.objects.create(name="Coat")
    first = random_photo(item)
    index_sync()
    store = index_store_get()
    path = settings.INDEX_DIR / f"index-{store.current_version()}.faiss"
    path.write_bytes(path.read_bytes()[:100])
    later = random_photo(item)

    # when a sync finds it so (it still says so to its caller)
    with pytest.raises(IndexUnreadable):
        index_sync()

    # then the repair it queued (run at once: tasks are eager here) rebuilt it from the database, and
    # the next sync works; before, nothing rebuilt it until a worker restarted
    assert indexed_ids() == {first.pk, later.pk}
    assert index_sync()


def test_a_photo_tagged_again_since_its_damaged_embedding_was_read_is_not_failed():
    from django.utils import timezone

    from catalog.services.stored_embeddings import photos_fail_damaged_embeddings

    photo = photo_with_embedding(Item.objects.create(name="Coat"), DAMAGED["cut short"])
    read_at = photo.tagged_at
    Photo.objects.filter(pk=photo.pk).update(  # a worker re-tags it meanwhile
        embedding=unit(RNG.standard_normal(EMBEDDING_DIM)).tobytes(), tagged_at=timezone.now()
    )

    photos_fail_damaged_embeddings([(photo.pk, read_at)])

    photo.refresh_from_db()
    assert photo.status == Photo.Status.TAGGED


def test_a_rebuild_fails_every_photo_of_a_catalog_whose_embeddings_all_went_bad():
    # given more damaged photos than one query may name (SQLite refused an OR term per photo past 1,000)
    item = Item.objects.create(name="Coat")
    Photo.objects.bulk_create(
        Photo(item=item, image="photos/x.jpg", status=Photo.Status.TAGGED, embedding=b"\x00" * 16)
        for _ in range(1200)
    )

    index_rebuild()

    assert not Photo.objects.filter(status=Photo.Status.TAGGED).exists()
    assert indexed_ids() == set()
