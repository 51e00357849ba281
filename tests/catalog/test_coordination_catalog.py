"""Complete the look over a whole catalog: every photo may be suggested, at a bounded number of queries
(past the batch cap, from the first photos of a place only)."""

from __future__ import annotations

import random

import pytest

from catalog.models import Item, Look, Photo, Tag
from catalog.selectors import photo_tags_best
from catalog.services.best_tags import tags_best_mark
from catalog.services.coordination import BODY_PLACE, COMPLEMENTS, look_suggest, looks_shared_counts, pairing_score
from recognition.labels import LABEL_SETS
from tests.catalog.test_coordination import _item

pytestmark = pytest.mark.django_db


def _brute_force(anchor_tags: dict[str, str], anchor_item: Item | None, per_place: int) -> dict[str, list[tuple]]:
    """The oracle: every photo scored by the rules, an item as its best photo per place, ties to the older photo."""
    curated = looks_shared_counts(item=anchor_item) if anchor_item else {}
    best: dict[tuple[int, str], tuple[float, int]] = {}
    for photo in Photo.objects.filter(status=Photo.Status.TAGGED).order_by("pk").prefetch_related("tags"):
        if anchor_item is not None and photo.item_id == anchor_item.pk:
            continue
        tags = {a: t.value for a, t in photo_tags_best(photo=photo).items()}
        pairing = pairing_score(anchor_tags, tags, curated_together=curated.get(photo.item_id, 0))
        if pairing is not None:
            key = (photo.item_id, BODY_PLACE[tags["type"]])
            if key not in best or pairing[0] > best[key][0]:
                best[key] = (pairing[0], photo.pk)
    groups: dict[str, list[tuple]] = {}
    for (item_id, place), (score, _) in sorted(best.items(), key=lambda entry: (-entry[1][0], entry[1][1])):
        if len(groups.setdefault(place, [])) < per_place:
            groups[place].append((item_id, round(score, 6)))
    places = COMPLEMENTS[BODY_PLACE[anchor_tags["type"]]]
    return {place: groups[place] for place in places if groups.get(place)}


def _random_catalog(rng: random.Random, items: int) -> list[Item]:
    """Items of one or two photos, each with several model tags per attribute, some hand-set or unlisted."""
    made = []
    for number in range(items):
        item = Item.objects.create(name=f"item {number}")
        for _ in range(rng.choice([1, 1, 2])):
            photo = Photo.objects.create(item=item, image="photos/x.jpg", status=Photo.Status.TAGGED, embedding=b"\0")
            for attribute in ("type", "colour", "style"):
                if attribute != "type" and rng.random() < 0.1:
                    continue  # some photos lack a colour or a style
                labels = list(LABEL_SETS[attribute].labels) + (["teal"] if attribute == "colour" else [])
                for value in rng.sample(labels, rng.choice([1, 2, 3])):
                    source = Tag.Source.HAND if rng.random() < 0.1 else Tag.Source.MODEL
                    Tag.objects.create(photo=photo, attribute=attribute, value=value, score=rng.random(), source=source)
            tags_best_mark(photo_ids=[photo.pk])
        made.append(item)
    return made


@pytest.mark.parametrize("seed", [1, 2, 3])
@pytest.mark.parametrize("small_place_photos", [0, 1000], ids=["by score level", "each photo of a small place"])
def test_suggestions_are_the_rule_books_best_over_every_photo(monkeypatch, seed, small_place_photos):
    # given: a random catalog read two photos at a time (with no cap on the batches: the cap trades
    # exactness for bounded queries, tested below), a curated look, and anchors of every kind
    monkeypatch.setattr("catalog.services.coordination.LOOK_BATCH_PHOTOS", 2)
    monkeypatch.setattr("catalog.services.coordination.LOOK_MAX_BATCHES", 10_000)
    monkeypatch.setattr("catalog.services.coordination.LOOK_SMALL_PLACE_PHOTOS", small_place_photos)
    rng = random.Random(seed)
    items = _random_catalog(rng, 60)
    anchor_item = items[0]
    look = Look.objects.create(name="curated")
    look.items.set([anchor_item, *rng.sample(items[1:], 3)])
    anchors = [
        ({"type": "shirt", "colour": "red", "style": "casual"}, anchor_item),
        ({"type": "dress", "colour": "navy", "style": "formal"}, None),
        ({"type": "shoes", "colour": "teal"}, None),
        ({"type": "hat"}, None),
    ]
    for anchor_tags, item in anchors:
        # when
        groups = look_suggest(anchor_tags=anchor_tags, anchor_item=item, per_place=3)

        # then: the same items and scores, in the same order, as scoring every photo
        found = {place: [(s.item.pk, round(s.score, 6)) for s in group] for place, group in groups.items()}
        assert found == _brute_force(anchor_tags, item, 3), anchor_tags


def test_a_newer_item_that_goes_best_is_suggested_past_the_oldest_photos(monkeypatch):
    # given: older pants of a clashing style, and the newest pants of the anchor's own style (a scan of
    # the oldest photos only, as this once was, missed it)
    monkeypatch.setattr("catalog.services.coordination.LOOK_SMALL_PLACE_PHOTOS", 2)
    for number in range(3):
        _item(f"old pants {number}", type="pants", colour="black", style="sporty")
    newest = _item("new pants", type="pants", colour="black", style="business")

    # when
    groups = look_suggest(anchor_tags={"type": "shirt", "colour": "white", "style": "business"})

    # then
    assert groups["bottom"][0].item == newest
    assert groups["bottom"][0].reason == "black is a neutral · both business"


def test_the_number_of_queries_does_not_grow_with_the_catalog(monkeypatch, django_assert_max_num_queries):
    # given: a catalog where every place fills from its best score level, read level by level
    monkeypatch.setattr("catalog.services.coordination.LOOK_SMALL_PLACE_PHOTOS", 10)
    for number in range(40):
        _item(f"pants {number}", type="pants", colour="black", style="business")
        _item(f"shoes {number}", type="shoes", colour="brown", style="business")

    # when / then: about three queries a place, whatever the catalog's size
    with django_assert_max_num_queries(11):
        groups = look_suggest(anchor_tags={"type": "shirt", "colour": "white", "style": "business"})
    assert [len(group) for group in groups.values()] == [3, 3]


def test_photos_holding_a_level_only_through_weak_second_tags_cost_that_level_no_batches(
    monkeypatch, django_assert_max_num_queries
):
    # given: many shoes whose best colour is blue, each with black as a weak second guess (once the
    # black level's query matched them all, though none scores there by its best tags)
    monkeypatch.setattr("catalog.services.coordination.LOOK_SMALL_PLACE_PHOTOS", 5)
    monkeypatch.setattr("catalog.services.coordination.LOOK_BATCH_PHOTOS", 2)
    for number in range(60):
        shoe = _item(f"shoes {number}", type="shoes", colour="blue", style="casual")
        Tag.objects.create(
            photo=shoe.photos.get(), attribute="colour", value="black", score=0.1, source=Tag.Source.MODEL
        )
        tags_best_mark(photo_ids=[shoe.photos.get().pk])

    # when / then: levels read best tags, so the black and red levels find no shoe at once and the blue
    # one fills the place in two batches: 15 queries in all, where reading any stored tag walked the
    # black level to the batch cap (30)
    with django_assert_max_num_queries(15):
        groups = look_suggest(anchor_tags={"type": "shirt", "colour": "red", "style": "casual"})

    # and the place is filled with the first blue shoes
    assert [suggestion.item.name for suggestion in groups["shoes"]] == ["shoes 0", "shoes 1", "shoes 2"]
