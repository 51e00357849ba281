"""Read selectors: what the search's candidate fetch loads, and in how many queries."""

from __future__ import annotations

import pytest

from catalog.models import Item, Photo, Tag
from catalog.selectors import (
    candidate_photos,
    photo_ids_best_tagged,
    photo_tags_best,
    photos_best_tags_scored,
    photos_for_results,
    photos_tagged_query,
)
from catalog.services.best_tags import tags_best_mark

pytestmark = pytest.mark.django_db

# (attribute, value, score, source): several stored tags per attribute, as tagging keeps every
# candidate above the store threshold, and a hand-set tag that must beat a higher model score.
TAGS = [
    ("type", "dress", 0.81, Tag.Source.MODEL),
    ("type", "skirt", 0.12, Tag.Source.MODEL),
    ("colour", "red", 0.55, Tag.Source.MODEL),
    ("colour", "pink", 0.30, Tag.Source.MODEL),
    ("colour", "navy", 0.20, Tag.Source.HAND),
    ("pattern", "plain", 0.07, Tag.Source.MODEL),
    ("pattern", "striped", 0.64, Tag.Source.MODEL),
]


def _catalog(photos: int) -> list[Photo]:
    made = []
    for n in range(photos):
        item = Item.objects.create(
            name=f"Dress {n}", brand="Acme", price="19.90", shop_url=f"https://shop.example.com/{n}",
            description="A long product description. " * 40,
        )
        photo = Photo.objects.create(
            item=item, image=f"photos/{n}.jpg", status=Photo.Status.TAGGED, embedding=b"\0" * 5120
        )
        Tag.objects.bulk_create(
            Tag(photo=photo, attribute=a, value=v, score=s - n / 1000, source=src) for a, v, s, src in TAGS
        )
        made.append(photo)
    tags_best_mark(photo_ids=[photo.pk for photo in made])
    return made


def _best_of_all_tags(photo_id: int) -> dict[str, tuple[str, float, str]]:
    """The oracle: photo_tags_best over every stored tag, as the search ranked before."""
    photo = Photo.objects.prefetch_related("tags").get(pk=photo_id)
    return {a: (t.value, t.score, t.source) for a, t in photo_tags_best(photo=photo).items()}


def test_candidate_fetch_gives_the_same_best_tags_as_all_tags(django_assert_num_queries):
    # given: tagged photos, one pending photo and an id that no longer exists
    photos = _catalog(5)
    pending = Photo.objects.create(item=photos[0].item, image="photos/p.jpg", status=Photo.Status.PENDING)
    ids = [p.pk for p in photos] + [pending.pk, 10**9]

    # when: the candidates are fetched
    with django_assert_num_queries(1):
        fetched = candidate_photos(photo_ids=ids)

    # then: only the tagged photos, with their item and exactly the best tags that all of its tags give
    assert set(fetched) == {p.pk for p in photos}
    for photo in photos:
        row = fetched[photo.pk]
        assert row.item_id == photo.item_id
        best = _best_of_all_tags(photo.pk)
        assert row.tags == {a: value for a, (value, _, _) in best.items()}
        assert row.tag_scores == {a: score for a, (_, score, _) in best.items()}
        assert row.tags["colour"] == "navy"  # hand-set wins over a higher model score


def test_a_tagged_photo_without_tags_is_a_candidate_with_no_tags():
    # given: a tagged photo whose tags were all taken off (a merchant deleted them in the admin)
    photo = _catalog(1)[0]
    photo.tags.all().delete()

    # then: it is still a candidate of its item, with nothing to rank it by
    row = candidate_photos(photo_ids=[photo.pk])[photo.pk]
    assert (row.item_id, row.tags, row.tag_scores) == (photo.item_id, {}, {})


def test_exact_ties_between_tags_go_to_the_oldest_in_candidates_and_the_filter_match_alike():
    # given: two model tags of one attribute with the very same score
    photo = _catalog(1)[0]
    Tag.objects.filter(photo=photo, attribute="type").delete()
    Tag.objects.create(photo=photo, attribute="type", value="coat", score=0.5, source=Tag.Source.MODEL)
    Tag.objects.create(photo=photo, attribute="type", value="dress", score=0.5, source=Tag.Source.MODEL)
    tags_best_mark(photo_ids=[photo.pk])

    # then: every read names the older one
    assert candidate_photos(photo_ids=[photo.pk])[photo.pk].tags["type"] == "coat"
    assert list(photos_tagged_query(filters={"type": "coat"})) == [photo]
    assert list(photos_tagged_query(filters={"type": "dress"})) == []
    tagged = photos_tagged_query(filters={})
    assert list(photos_best_tags_scored(photos=tagged, filters={"type": "coat"})) == [photo]
    assert list(photos_best_tags_scored(photos=tagged, filters={"type": "dress"})) == []


def test_result_photos_load_what_a_result_shows_and_not_the_embedding(django_assert_num_queries):
    # given
    photos = _catalog(3)

    # when: the page's photos are fetched and shown as results are
    with django_assert_num_queries(1):
        fetched = photos_for_results(photo_ids=[p.pk for p in photos])
    with django_assert_num_queries(0):
        shown = [
            (p.item.pk, p.item.name, p.item.brand, str(p.item.price), p.item.currency, p.item.shop_url, p.image.url)
            for p in fetched.values()
        ]

    # then: every shown field came with the one query; the 5 KB embedding and the description did not
    assert len(shown) == 3
    photo = next(iter(fetched.values()))
    assert {"embedding", "created_at"} <= photo.get_deferred_fields()
    assert {"description", "import_key"} <= photo.item.get_deferred_fields()


def test_tag_filter_and_match_read_best_tags_only():
    # given: photos whose colour tags are red, pink and a hand-set navy that is their best
    photos = _catalog(3)

    # then: a colour they carry but not as their best finds none of them; their best finds all
    assert list(photos_tagged_query(filters={"colour": "pink"})) == []
    tagged = photos_tagged_query(filters={"colour": "navy"})
    assert set(tagged.values_list("pk", flat=True)) == {p.pk for p in photos}
    # and so do the ids the index is narrowed by, with every filter applied
    assert photo_ids_best_tagged(filters={"colour": "pink"}) == []
    assert sorted(photo_ids_best_tagged(filters={"colour": "navy", "type": "dress"})) == [p.pk for p in photos]
    assert photo_ids_best_tagged(filters={"colour": "navy", "type": "skirt"}) == []
    assert list(photos_best_tags_scored(photos=photos_tagged_query(filters={}), filters={"colour": "pink"})) == []

    # and the match scores each photo by the mean score of its matching best tags
    matches = photos_best_tags_scored(photos=tagged, filters={"colour": "navy", "type": "dress"})
    scores = dict(matches.values_list("pk", "match_score"))
    assert set(scores) == {p.pk for p in photos}
    assert scores[photos[0].pk] == pytest.approx((0.20 + 0.81) / 2)

    # and no filter matches every photo, scored 0
    assert dict(photos_best_tags_scored(photos=tagged, filters={}).values_list("pk", "match_score")) == {
        p.pk: 0.0 for p in photos
    }
