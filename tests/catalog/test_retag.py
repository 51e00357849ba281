"""`manage.py retag`: batched re-tagging with parallel decoding, safe to repeat, hand-set tags kept."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Photo, Tag
from recognition.services import backbone_get, index_store_get


def _retag(*args: str) -> str:
    out = io.StringIO()
    call_command("retag", *args, "--verbosity", "0", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_retag_embeds_every_photo_again_in_batches_and_rebuilds_the_index(tagged_catalog):
    # given: a tagged catalog whose embeddings were wiped, and one hand-set tag
    photo = Photo.objects.order_by("pk").first()
    Tag.objects.filter(photo=photo, attribute="type").delete()
    Tag.objects.create(photo=photo, attribute="type", value="hat", source=Tag.Source.HAND)
    Photo.objects.update(embedding=None, embedding_model="", status=Photo.Status.PENDING)

    # when
    output = _retag("--batch-size", "8", "--decode-workers", "2")

    # then: every photo is tagged by the current backbone, indexed once, and the hand-set tag survived
    total = Photo.objects.count()
    assert f"tagged {total} photos, 0 failed" in output
    version = backbone_get().version
    assert set(Photo.objects.values_list("status", "embedding_model")) == {(Photo.Status.TAGGED, version)}
    assert sorted(index_store_get().load().ids().tolist()) == sorted(Photo.objects.values_list("pk", flat=True))
    type_tags = list(photo.tags.filter(attribute="type").values_list("value", "source"))
    assert type_tags == [("hat", Tag.Source.HAND)]


@pytest.mark.django_db
def test_retag_skips_photos_already_tagged_by_this_backbone_unless_forced(tagged_catalog):
    assert "tagged 0 photos, 0 failed" in _retag()
    assert f"tagged {Photo.objects.count()} photos" in _retag("--force", "--limit", "100")
    assert "tagged 3 photos" in _retag("--force", "--limit", "3")


@pytest.mark.django_db
def test_a_corrupt_photo_is_marked_failed_and_the_rest_are_tagged(tagged_catalog):
    # given: one photo file overwritten with garbage
    broken = Photo.objects.order_by("pk").last()
    with broken.image.open("wb") as handle:
        handle.write(b"\xff\xd8\xff not really a jpeg")

    # when
    output = _retag("--force", "--batch-size", "4")

    # then
    broken.refresh_from_db()
    assert broken.status == Photo.Status.FAILED
    assert broken.failure_reason
    assert f"tagged {Photo.objects.count() - 1} photos, 1 failed" in output


@pytest.mark.django_db
def test_retag_refuses_a_batch_size_below_one():
    with pytest.raises(CommandError, match="at least 1"):
        _retag("--batch-size", "0")
