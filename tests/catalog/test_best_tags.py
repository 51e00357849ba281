"""Exactly the tag a photo shows for an attribute is marked best, whoever wrote the photo's tags.

Refine, text search and Complete the look read only marked tags, so a photo marked wrongly would be
found under a colour it does not show, or not found under the one it does.
"""

from __future__ import annotations

import importlib
import io
import random

import pytest
from django.apps import apps
from django.core.management import call_command
from django.db import IntegrityError, transaction

from catalog.models import Item, Photo, Tag
from catalog.selectors import photo_tags_best
from catalog.services.best_tags import tags_best_mark
from catalog.services.tagging import photo_tag_set_by_hand, photos_tags_apply
from recognition.recognizers import Prediction

pytestmark = pytest.mark.django_db


def _photo() -> Photo:
    item = Item.objects.create(name="Shirt")
    return Photo.objects.create(item=item, image="photos/x.jpg", status=Photo.Status.TAGGED, embedding=b"\0")


def _marked(photo: Photo) -> list[tuple[str, str]]:
    return sorted(photo.tags.filter(is_best=True).values_list("attribute", "value"))


def _shown(photo: Photo) -> list[tuple[str, str]]:
    return sorted((attribute, tag.value) for attribute, tag in photo_tags_best(photo=photo).items())


def _random_tags(rng: random.Random, photo: Photo) -> None:
    """Several tags per attribute: hand-set or not, and scores drawn from few values, so ties are common."""
    for attribute, labels in (("colour", ["red", "blue", "navy", "teal"]), ("style", ["casual", "party", "formal"])):
        for value in rng.sample(labels, rng.randint(1, len(labels))):
            source = Tag.Source.HAND if rng.random() < 0.3 else Tag.Source.MODEL
            Tag.objects.create(photo=photo, attribute=attribute, value=value, score=rng.choice([0.2, 0.5, 0.5, 0.9]),
                               source=source)


def test_bulk_tagging_marks_each_attributes_highest_candidate_and_moves_the_mark_when_it_changes():
    # given: a photo tagged with two colour candidates
    photo = _photo()
    photos_tags_apply({photo.pk: {"colour": [Prediction("blue", 0.6), Prediction("red", 0.3)]}})
    assert _marked(photo) == [("colour", "blue")]

    # when: it is tagged again and the model now prefers red
    photos_tags_apply({photo.pk: {"colour": [Prediction("red", 0.7), Prediction("blue", 0.2)]}})

    # then
    assert _marked(photo) == [("colour", "red")] == _shown(photo)


@pytest.mark.parametrize("seed", [1, 2, 3])
def test_bulk_tagging_marks_the_shown_tag_whatever_the_ties_and_hand_set_tags(seed):
    # given: photos, some with a hand-set colour, tagged twice with random candidates of few scores
    rng = random.Random(seed)
    photos = [_photo() for _ in range(8)]
    for photo in photos[:3]:
        photo_tag_set_by_hand(photo=photo, attribute="colour", value="navy")
    for _ in range(2):
        predictions = {
            photo.pk: {
                attribute: [
                    Prediction(value, rng.choice([0.3, 0.5, 0.5]))
                    for value in rng.sample(labels, rng.randint(1, len(labels)))
                ]
                for attribute, labels in (("colour", ["red", "blue", "teal"]), ("style", ["casual", "party"]))
            }
            for photo in photos
        }

        # when
        photos_tags_apply(predictions)

        # then: one mark per photo and attribute, on the tag the photo shows
        for photo in photos:
            assert _marked(photo) == _shown(photo)


def test_a_merchants_tag_is_marked_over_the_models_candidates():
    photo = _photo()
    photos_tags_apply({photo.pk: {"colour": [Prediction("blue", 0.6)], "style": [Prediction("casual", 0.8)]}})

    tag = photo_tag_set_by_hand(photo=photo, attribute="colour", value="navy")

    assert tag.is_best
    assert _marked(photo) == [("colour", "navy"), ("style", "casual")] == _shown(photo)


@pytest.mark.parametrize("seed", [1, 2, 3, 4])
def test_marks_follow_the_shown_tag_for_any_mix_of_hand_set_tags_scores_and_ties(seed, monkeypatch):
    monkeypatch.setattr("catalog.services.best_tags.PHOTOS_PER_CHUNK", 5)  # several chunks
    # given: photos with random tags, some already marked wrongly
    rng = random.Random(seed)
    photos = [_photo() for _ in range(12)]
    for photo in photos:
        _random_tags(rng, photo)
    for photo in photos:  # one random tag of an attribute marked, or none
        for attribute in ("colour", "style"):
            tags = list(photo.tags.filter(attribute=attribute))
            if rng.random() < 0.5:
                Tag.objects.filter(pk=rng.choice(tags).pk).update(is_best=True)

    # when
    tags_best_mark(photo_ids=[photo.pk for photo in photos])

    # then: one mark per photo and attribute, on the tag the photo shows
    for photo in photos:
        assert _marked(photo) == _shown(photo)


def test_the_migration_marks_the_tags_of_a_catalog_tagged_before_the_mark_existed(monkeypatch):
    # given: photos with tags and no mark, as the upgrade finds them
    rng = random.Random(7)
    photos = [_photo() for _ in range(5)]
    for photo in photos:
        _random_tags(rng, photo)
    Tag.objects.update(is_best=False)

    # when
    migration = importlib.import_module("catalog.migrations.0007_tag_is_best")
    monkeypatch.setattr(migration, "PHOTOS_PER_CHUNK", 2)  # several chunks
    migration.best_tags_mark(apps, None)

    # then
    for photo in photos:
        assert _marked(photo) == _shown(photo)


def test_the_command_marks_tags_written_outside_the_app_and_says_how_many_marks_changed():
    # given: tags inserted without marks, as a worker of the previous version writes them
    photos = [_photo() for _ in range(3)]
    Tag.objects.bulk_create(
        Tag(photo=photo, attribute="colour", value=value, score=score, source=Tag.Source.MODEL)
        for photo in photos
        for value, score in (("blue", 0.6), ("red", 0.3))
    )
    out = io.StringIO()

    # when
    call_command("mark_best_tags", stdout=out, stderr=io.StringIO())

    # then: each photo's blue is marked; a second run finds nothing to change
    assert [_marked(photo) for photo in photos] == [[("colour", "blue")]] * 3
    assert "3 photos checked; 3 best-tag marks changed" in out.getvalue()
    call_command("mark_best_tags", stdout=(again := io.StringIO()), stderr=io.StringIO())
    assert "0 best-tag marks changed" in again.getvalue()


def test_the_database_refuses_a_second_marked_tag_for_a_photo_and_attribute():
    photo = _photo()
    photos_tags_apply({photo.pk: {"colour": [Prediction("blue", 0.6), Prediction("red", 0.3)]}})

    with pytest.raises(IntegrityError), transaction.atomic():
        Tag.objects.filter(photo=photo, value="red").update(is_best=True)
