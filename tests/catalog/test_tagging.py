"""Tagging a photo: idempotent, hand-set tags win, corrupt photos fail with a reason, index kept in step."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from catalog.models import Item, Photo, Tag
from catalog.services.index import index_matches_catalog, index_rebuild
from catalog.services.tagging import photo_tag, photo_tag_set_by_hand
from recognition.services import index_store_get

pytestmark = pytest.mark.django_db


def test_tagging_twice_changes_nothing(tagged_catalog):
    photo = Photo.objects.first()
    before = (bytes(photo.embedding), list(photo.tags.values_list("attribute", "value", "score", "source")))
    version = index_store_get().current_version()
    photo_tag(photo_id=photo.pk)
    photo.refresh_from_db()
    assert (bytes(photo.embedding), list(photo.tags.values_list("attribute", "value", "score", "source"))) == before
    assert index_store_get().current_version() == version  # skipped: not even the index was rewritten


def test_hand_set_tag_survives_retagging(tagged_catalog):
    photo = Photo.objects.first()
    Tag.objects.filter(photo=photo, attribute="type").delete()
    Tag.objects.create(photo=photo, attribute="type", value="skirt", source=Tag.Source.HAND)
    photo_tag(photo_id=photo.pk, force=True)
    types = list(photo.tags.filter(attribute="type").values_list("value", "source"))
    assert types == [("skirt", Tag.Source.HAND)]


def test_model_tags_are_stored_with_scores_when_no_hand_tag_exists(tagged_catalog):
    photo = Photo.objects.first()
    Tag.objects.filter(photo=photo).delete()
    photo_tag(photo_id=photo.pk, force=True)
    model_tags = photo.tags.filter(attribute="type", source=Tag.Source.MODEL)
    assert model_tags.exists()
    assert all(0.0 < tag.score <= 1.0 for tag in model_tags)


def test_a_corrupt_photo_is_marked_failed_with_a_reason():
    item = Item.objects.create(name="Broken")
    photo = Photo(item=item)
    photo.image.save("broken.jpg", ContentFile(b"\xff\xd8\xff garbage"), save=True)
    photo_tag(photo_id=photo.pk)
    photo.refresh_from_db()
    assert photo.status == Photo.Status.FAILED
    assert photo.failure_reason.startswith("The image is")  # e.g. "The image is truncated: ..."


def test_a_photo_deleted_before_its_task_runs_is_skipped():
    assert photo_tag(photo_id=123456) is None


def test_deleting_an_item_removes_its_photos_from_the_index(tagged_catalog, committed):
    item = tagged_catalog[0]
    photo_ids = set(item.photos.values_list("pk", flat=True))
    with committed():
        item.delete()
    assert not photo_ids & set(index_store_get().load().ids().tolist())
    assert index_matches_catalog()


def test_rebuild_recreates_the_index_from_the_database(tagged_catalog, settings, tmp_path):
    settings.INDEX_DIR = tmp_path / "fresh-index"
    assert not index_matches_catalog()
    index = index_rebuild()
    assert len(index) == Photo.objects.filter(status=Photo.Status.TAGGED).count() == 20
    assert index_matches_catalog()


def test_a_hand_set_tag_replaces_the_models_tags_of_its_attribute(tagged_catalog):
    photo = Photo.objects.first()
    model_value = photo.tags.filter(attribute="pattern", source=Tag.Source.MODEL).first().value
    photo_tag_set_by_hand(photo=photo, attribute="pattern", value=model_value)  # same value: no clash
    assert list(photo.tags.filter(attribute="pattern").values_list("value", "source")) == [
        (model_value, Tag.Source.HAND)
    ]
