"""`manage.py retag`: batched re-tagging with parallel decoding, safe to repeat, hand-set tags kept."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from catalog.management.commands import retag as retag_command
from catalog.models import Photo, Tag
from recognition.services import backbone_get, index_store_get


def _retag(*args: str) -> str:
    out = io.StringIO()
    call_command("retag", *args, "--verbosity", "0", stdout=out)
    return out.getvalue()


@pytest.mark.django_db
def test_retag_embeds_every_photo_again_in_batches_and_rebuilds_the_index(tagged_catalog):
    # given: a tagged catalog whose embeddings were wiped, and one photo with hand-set type and pattern
    photo = Photo.objects.order_by("pk").first()
    Tag.objects.filter(photo=photo, attribute="type").delete()
    Tag.objects.create(photo=photo, attribute="type", value="hat", source=Tag.Source.HAND)
    Tag.objects.filter(photo=photo, attribute="pattern").delete()
    Tag.objects.create(photo=photo, attribute="pattern", value="striped", source=Tag.Source.HAND)
    Photo.objects.update(embedding=None, embedding_model="", status=Photo.Status.PENDING)

    # when
    output = _retag("--batch-size", "8", "--decode-workers", "2")

    # then: every photo is tagged by the current backbone, indexed once, and the hand-set tags survived
    total = Photo.objects.count()
    assert f"tagged {total} photos, 0 failed" in output
    version = backbone_get().version
    assert set(Photo.objects.values_list("status", "embedding_model")) == {(Photo.Status.TAGGED, version)}
    assert sorted(index_store_get().load().ids().tolist()) == sorted(Photo.objects.values_list("pk", flat=True))
    type_tags = list(photo.tags.filter(attribute="type").values_list("value", "source"))
    assert type_tags == [("hat", Tag.Source.HAND)]
    assert not photo.tags.filter(attribute="pattern", source=Tag.Source.MODEL).exists()
    # the photos batched with it got the model's pattern tags; its own hand-set pattern stayed alone
    patterned_by_model = set(Tag.objects.filter(attribute="pattern", source=Tag.Source.MODEL).values_list(
        "photo_id", flat=True
    ))
    assert patterned_by_model == set(Photo.objects.exclude(pk=photo.pk).values_list("pk", flat=True))
    assert list(photo.tags.filter(attribute="pattern").values_list("value", "source")) == [
        ("striped", Tag.Source.HAND)
    ]


@pytest.mark.django_db
def test_retag_stores_the_tags_that_tagging_one_photo_at_a_time_stores(tagged_catalog):
    # given: the tags and scores each photo got from its own tag_photo task
    def model_tags() -> dict[int, dict[tuple[str, str], float]]:
        tags: dict[int, dict[tuple[str, str], float]] = {}
        for photo_id, attribute, value, score in Tag.objects.filter(source=Tag.Source.MODEL).values_list(
            "photo_id", "attribute", "value", "score"
        ):
            tags.setdefault(photo_id, {})[(attribute, value)] = score
        return tags

    one_at_a_time = model_tags()

    # when: retag embeds, recognises and stores them in batches
    _retag("--force", "--batch-size", "8")

    # then: the same tags, with the same scores up to float rounding between batch sizes
    batched = model_tags()
    assert set(batched) == set(one_at_a_time) == set(Photo.objects.values_list("pk", flat=True))
    for photo_id, tags in one_at_a_time.items():
        assert set(batched[photo_id]) == set(tags), photo_id
        assert batched[photo_id] == pytest.approx(tags, abs=1e-3)


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


@pytest.mark.django_db
def test_when_a_decoding_process_dies_retag_says_so_and_indexes_the_photos_it_stored(tagged_catalog, monkeypatch):
    # given: the last photo kills the process that decodes it, and every photo needs tagging again
    from catalog.services.index import index_matches_catalog
    from tests.catalog.dying_preparer import MARK, DyingPreparer

    monkeypatch.setattr("catalog.management.commands.retag.PhotoPreparer", DyingPreparer)
    last = Photo.objects.order_by("pk").last()
    with last.image.open("wb") as handle:
        handle.write(MARK)
    Photo.objects.update(embedding=None, embedding_model="", status=Photo.Status.PENDING)

    # when
    with pytest.raises(CommandError, match="decoding process died"):
        _retag("--batch-size", "4", "--decode-workers", "2")

    # then: photos stored before the crash count as tagged, and the index holds exactly those
    tagged = Photo.objects.filter(status=Photo.Status.TAGGED)
    assert tagged.exists() and not tagged.filter(pk=last.pk).exists()
    assert index_matches_catalog()


@pytest.mark.django_db
def test_a_retag_stopped_with_ctrl_c_leaves_the_photos_it_stored_indexed_with_their_new_vectors(
    tagged_catalog, monkeypatch
):
    # given: a forced retag that Ctrl-C stops while it recognises its second batch
    from catalog.services.index import index_matches_catalog

    real_recognize, batches = retag_command.images_recognize, []

    def recognize_then_interrupted(**kwargs):
        batches.append(1)
        if len(batches) == 2:
            raise KeyboardInterrupt
        return real_recognize(**kwargs)

    monkeypatch.setattr(retag_command, "images_recognize", recognize_then_interrupted)
    before = dict(Photo.objects.values_list("pk", "tagged_at"))

    # when
    with pytest.raises(KeyboardInterrupt):
        _retag("--force", "--batch-size", "4", "--decode-workers", "1")

    # then: the first batch was stored anew, and the index already holds its new vectors
    after = dict(Photo.objects.values_list("pk", "tagged_at"))
    assert sum(after[pk] != before[pk] for pk in before) == 4
    assert index_matches_catalog()


@pytest.mark.django_db
@pytest.mark.parametrize("limit", ["0", "-1"])
def test_retag_refuses_a_limit_below_one_before_touching_any_photo(limit):
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        _retag("--limit", limit)


@pytest.mark.django_db
def test_a_photo_whose_image_is_replaced_during_a_retag_is_left_to_the_tagging_of_its_new_image(
    tagged_catalog, monkeypatch
):
    # given: a catalog to re-tag, and a photo whose image the merchant replaces while its batch is
    # embedded (the admin's save queues the new image's own tagging)
    Photo.objects.update(embedding=None, embedding_model="", status=Photo.Status.PENDING)
    replaced = Photo.objects.order_by("pk").first()
    recognize = retag_command.images_recognize

    def recognize_while_replaced(**kwargs):
        Photo.objects.filter(pk=replaced.pk).update(image="photos/replacement.jpg")
        return recognize(**kwargs)

    monkeypatch.setattr(retag_command, "images_recognize", recognize_while_replaced)

    # when
    output = _retag("--batch-size", "64")

    # then: the old image's results are not stored for it; every other photo is tagged
    replaced.refresh_from_db()
    assert (replaced.status, replaced.embedding) == (Photo.Status.PENDING, None)
    assert f"tagged {Photo.objects.count() - 1} photos, 0 failed" in output
    assert Photo.objects.filter(status=Photo.Status.TAGGED).count() == Photo.objects.count() - 1
