"""Tagging a photo: idempotent, hand-set tags win, corrupt photos fail with a reason, index kept in step."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.base import ContentFile

from catalog.models import Item, Photo, Tag
from catalog.services import tagging
from catalog.services.index import index_matches_catalog, index_rebuild
from catalog.services.items import photos_queue_tagging
from catalog.services.tagging import photo_tag, photo_tag_set_by_hand
from recognition.services import index_store_get
from tests.conftest import demo_photos

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


def test_a_tagged_photo_whose_new_image_fails_leaves_the_index(tagged_catalog, committed):
    # given a tagged, indexed photo whose image a merchant replaces with one that cannot be read
    photo = Photo.objects.filter(status=Photo.Status.TAGGED).first()
    assert photo.pk in index_store_get().load().ids()
    with committed():
        photo.image.save("replaced.jpg", ContentFile(b"\xff\xd8\xff garbage"), save=True)
        photos_queue_tagging(photo_ids=[photo.pk], force=True, image_changed=True)  # as the admin's save does

    # when its re-tagging runs, then it failed and its old vector left the index
    photo.refresh_from_db()
    assert photo.status == Photo.Status.FAILED
    assert photo.pk not in index_store_get().load().ids()
    assert index_matches_catalog()


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


# --- A merchant replaces the image while a run is tagging the old one ------------------------------


def _photo_with_image(content: bytes) -> Photo:
    photo = Photo(item=Item.objects.create(name="Item"))
    photo.image.save("old.jpg", ContentFile(content), save=True)
    return photo


def _replace_once(photo: Photo, content: bytes):
    """A call that, the first time, saves a new image for `photo` and tags it, as the admin's save and
    the task it queues would on another worker; both finish before the run that called it."""
    done = []

    def replace() -> None:
        if not done:
            done.append(True)
            replaced = Photo.objects.get(pk=photo.pk)
            replaced.image.save("new.jpg", ContentFile(content), save=True)
            photo_tag(photo_id=photo.pk, force=True)

    return replace


def test_a_run_still_tagging_the_old_image_leaves_the_new_images_results_alone(monkeypatch):
    # given: a photo whose image is replaced (and the new one tagged) after a run read the old one
    old, new = demo_photos(per_type=1)[0], demo_photos(per_type=1)[6]
    photo = _photo_with_image(old.read_bytes())
    replace = _replace_once(photo, new.read_bytes())
    recognize = tagging.image_recognize

    def recognize_while_replaced(**kwargs):
        replace()
        return recognize(**kwargs)

    monkeypatch.setattr(tagging, "image_recognize", recognize_while_replaced)

    # when: the old run finishes
    photo_tag(photo_id=photo.pk, force=True)

    # then: the photo keeps what tagging the new image stored, as a fresh tagging of it stores
    photo.refresh_from_db()
    after_race = (bytes(photo.embedding), set(photo.tags.values_list("attribute", "value", "score")))
    photo_tag(photo_id=photo.pk, force=True)
    photo.refresh_from_db()
    assert photo.image.name.endswith("new.jpg")
    assert after_race == (bytes(photo.embedding), set(photo.tags.values_list("attribute", "value", "score")))


def test_an_unreadable_old_image_does_not_mark_its_readable_replacement_failed(monkeypatch):
    # given: a corrupt image, replaced by a good one (and tagged) while a run was decoding it
    photo = _photo_with_image(b"\xff\xd8\xff not really a jpeg")
    replace = _replace_once(photo, demo_photos(per_type=1)[0].read_bytes())
    decode = tagging.decode_image

    def decode_while_replaced(data, **kwargs):
        replace()
        return decode(data, **kwargs)

    monkeypatch.setattr(tagging, "decode_image", decode_while_replaced)

    # when
    photo_tag(photo_id=photo.pk, force=True)

    # then
    photo.refresh_from_db()
    assert photo.status == Photo.Status.TAGGED and photo.failure_reason == ""


# --- Transient failures: recorded when the last try fails too ------------------------------------


@pytest.fixture
def photo_on_a_failing_volume(tagged_catalog, monkeypatch) -> Photo:
    """A photo queued for tagging, and a media volume that answers every read with an I/O error."""
    from catalog import tasks

    photo = Photo.objects.order_by("pk").first()
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.PENDING)

    def storage_away(**kwargs):
        raise OSError("Input/output error")

    monkeypatch.setattr(tasks, "photo_tag", storage_away)
    return photo


def test_a_photo_whose_storage_fails_at_every_try_is_marked_failed_with_the_reason(photo_on_a_failing_volume):
    from catalog.tasks import tag_photo

    photo = photo_on_a_failing_volume
    # when: its last try fails (retries are used up)
    with pytest.raises(OSError):
        tag_photo.apply(args=(photo.pk,), retries=tag_photo.max_retries)

    # then: the task failed, and the photo says why, so "retry failed photos" takes it
    photo.refresh_from_db()
    assert photo.status == Photo.Status.FAILED
    assert photo.failure_reason == "not tagged after 7 tries: Input/output error"


def test_a_failed_try_that_will_be_retried_leaves_the_photo_pending(photo_on_a_failing_volume):
    from celery.exceptions import Retry

    from catalog.tasks import tag_photo

    photo = photo_on_a_failing_volume
    with pytest.raises(Retry):
        tag_photo.apply(args=(photo.pk,), retries=tag_photo.max_retries - 1)

    photo.refresh_from_db()
    assert (photo.status, photo.failure_reason) == (Photo.Status.PENDING, "")


def test_a_re_tag_that_finds_the_photos_file_missing_is_retried_and_leaves_the_photo_searchable(
    tagged_catalog, tmp_path
):
    # given a tagged, indexed photo whose file is away (a media volume not mounted yet, say)
    from celery.exceptions import Retry

    from catalog.tasks import tag_photo

    photo = Photo.objects.order_by("pk").first()
    stored = Path(photo.image.path)
    stored.rename(tmp_path / "away.jpg")
    try:
        # when its re-tag runs a first try
        with pytest.raises(Retry):
            tag_photo.apply(args=(photo.pk, True))
    finally:
        (tmp_path / "away.jpg").rename(stored)

    # then it will be tried again, and meanwhile the photo keeps its tags and its place in search
    photo.refresh_from_db()
    assert photo.status == Photo.Status.TAGGED
    assert photo.pk in index_store_get().load().ids()
