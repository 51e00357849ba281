"""Search by words: tag words become filters, other words match names."""

from __future__ import annotations

import random

import pytest

from catalog.models import Item, Photo, Tag
from catalog.services.best_tags import tags_best_mark
from catalog.services.text_search import query_parse, search_by_text
from tests.catalog.test_coordination import _item


def test_tag_words_and_synonyms_become_filters():
    filters, words = query_parse("Red striped shirt from Lumen")
    assert filters == {"colour": "red", "pattern": "striped", "type": "shirt"}
    assert words == ["lumen"]
    assert query_parse("grey plaid trousers")[0] == {"colour": "grey", "pattern": "check", "type": "pants"}


@pytest.mark.parametrize(
    ("query", "filters"),
    [
        ("a dress in red with stripes", {"type": "dress", "colour": "red", "pattern": "striped"}),
        ("dresses", {"type": "dress"}),
        ("blue t shirt", {"colour": "blue", "type": "t-shirt"}),
        ("T shirts", {"type": "t-shirt"}),
        ("long-sleeve", {"type": "longsleeve"}),
        ("long sleeves", {"type": "longsleeve"}),
        ("Long-sleeve top", {"type": "longsleeve"}),
        ("polka dots", {"pattern": "dotted"}),
    ],
)
def test_everyday_queries_are_understood_with_no_word_left_over(query, filters):
    assert query_parse(query) == (filters, [])


@pytest.mark.django_db
def test_text_search_finds_items_by_tags_and_name():
    wanted = _item("Lumen stripe", type="shirt", colour="red", pattern="striped")
    _item("Lumen plain", type="shirt", colour="red", pattern="plain")
    _item("Other stripe", type="shirt", colour="red", pattern="striped")
    page = search_by_text(query="red striped shirt lumen")
    understood, hits = page.understood, page.hits
    assert understood == {"colour": "red", "pattern": "striped", "type": "shirt"}
    assert [hit.item for hit in hits] == [wanted]
    assert "colour: red" in hits[0].why


@pytest.mark.django_db
def test_a_tag_word_finds_matching_items_anywhere_in_the_alphabet():
    # given: the red item named last (a name-ordered scan with a cut-off, as this once was, missed it)
    _item("Alpha tee", type="t-shirt", colour="blue")
    _item("Beta tee", type="t-shirt", colour="blue")
    zeta = _item("Zeta tee", type="t-shirt", colour="red")

    # when / then
    assert [hit.item for hit in search_by_text(query="red").hits] == [zeta]
    assert [hit.item for hit in search_by_text(query="red tee").hits] == [zeta]


@pytest.mark.django_db
def test_tag_words_rank_by_the_best_tag_score_then_name_and_ignore_tags_that_are_not_best():
    # given: a red item scored low, two scored high (one named later), and one whose red is only second best
    low = _item("Aaa", colour="red")
    Tag.objects.filter(photo__item=low).update(source=Tag.Source.MODEL, score=0.4)
    high_b, high_a = _item("Bbb", colour="red"), _item("Abb", colour="red")
    not_best = _item("Ccc", colour="blue")
    Tag.objects.create(photo=not_best.photos.get(), attribute="colour", value="red", score=0.3, source=Tag.Source.MODEL)
    tags_best_mark(photo_ids=[not_best.photos.get().pk])

    # when
    hits = search_by_text(query="red").hits

    # then
    assert [hit.item for hit in hits] == [high_a, high_b, low]
    assert [hit.score for hit in hits] == [1.0, 1.0, 0.4]
    assert hits[0].tags == {"colour": "red"}


@pytest.mark.django_db
def test_free_words_alone_list_matching_items_by_name_with_their_first_photo(django_assert_max_num_queries):
    # given: matching items out of name order, one with a second photo, and one item not matching
    later = _item("Lumen zip", type="shirt")
    first = _item("Lumen a", type="pants")
    Photo.objects.create(item=first, image="photos/y.jpg", status=Photo.Status.TAGGED, embedding=b"\0" * 8)
    _item("Other", type="shirt")

    # when: a query of free words only, in a bounded number of queries
    with django_assert_max_num_queries(4):
        hits = search_by_text(query="lumen").hits

    # then
    assert [hit.item for hit in hits] == [first, later]
    assert hits[0].photo == first.photos.order_by("pk").first()


@pytest.mark.django_db
@pytest.mark.parametrize("query", ["red", "lumen"], ids=["tag word", "free word"])
def test_text_search_pages_through_every_match_and_says_when_there_are_more(query):
    # given: seven matching items
    names = [f"Lumen {letter}" for letter in "abcdefg"]
    for name in names:
        _item(name, colour="red")
    _item("Other", colour="blue")

    # when: read three at a time
    pages = [search_by_text(query=query, limit=3, offset=offset) for offset in (0, 3, 6)]

    # then: each item once, in order, and only the last page says there are no more
    assert [hit.item.name for page in pages for hit in page.hits] == names
    assert [page.more for page in pages] == [True, True, False]


@pytest.mark.django_db
def test_text_search_promises_no_more_past_the_furthest_offset_it_serves(monkeypatch):
    # given: four matching items and a furthest offset of 2
    monkeypatch.setattr("catalog.services.text_search.MAX_OFFSET", 2)
    for name in ("Lumen a", "Lumen b", "Lumen c", "Lumen d"):
        _item(name, colour="red")

    # when / then: the page at offset 1 is served, and no page after it is promised
    assert search_by_text(query="lumen", limit=1, offset=1).more is True  # offset 2 will be served
    assert search_by_text(query="lumen", limit=1, offset=2).more is False


@pytest.mark.django_db
def test_an_item_with_several_matching_photos_is_listed_once_with_its_best_scoring_photo_the_older_on_a_tie():
    # given: an item with red photos scored 0.6, 0.9 and 0.9, and another item scored 0.7
    item = _item("Lumen", colour="red")
    photos = [item.photos.get()]
    for _ in range(2):
        photo = Photo.objects.create(item=item, image="photos/x.jpg", status=Photo.Status.TAGGED, embedding=b"\0" * 8)
        Tag.objects.create(photo=photo, attribute="colour", value="red", score=0.9, source=Tag.Source.MODEL)
        tags_best_mark(photo_ids=[photo.pk])
        photos.append(photo)
    Tag.objects.filter(photo=photos[0]).update(source=Tag.Source.MODEL, score=0.6)
    other = _item("Other", colour="red")
    Tag.objects.filter(photo__item=other).update(source=Tag.Source.MODEL, score=0.7)

    # when
    hits = search_by_text(query="red").hits

    # then: the item once, first, shown by the older of its two best photos
    expected = [(item, photos[1], 0.9), (other, other.photos.get(), 0.7)]
    assert [(hit.item, hit.photo, hit.score) for hit in hits] == expected


@pytest.mark.django_db
def test_several_tag_words_rank_items_by_the_mean_score_of_their_matching_best_tags():
    # given: red dresses whose two tags score (0.9, 0.3), (0.5, 0.5) and (0.4, 0.9), and a red skirt
    made = {}
    for name, colour_score, type_score in (("A", 0.9, 0.3), ("B", 0.5, 0.5), ("C", 0.4, 0.9)):
        made[name] = _item(name, colour="red", type="dress")
        photo = made[name].photos.get()
        Tag.objects.filter(photo=photo, attribute="colour").update(source=Tag.Source.MODEL, score=colour_score)
        Tag.objects.filter(photo=photo, attribute="type").update(source=Tag.Source.MODEL, score=type_score)
    _item("Skirt", colour="red", type="skirt")

    # when
    hits = search_by_text(query="red dress").hits

    # then: C (0.65), A (0.6), B (0.5); the skirt is not a dress
    assert [(hit.item.name, round(hit.score, 6)) for hit in hits] == [("C", 0.65), ("A", 0.6), ("B", 0.5)]


@pytest.mark.django_db
@pytest.mark.parametrize("extra_items", [2000, 3], ids=["walked", "ties past the walk's bound"])
def test_one_tag_word_pages_exactly_as_ranking_every_match_in_the_database(monkeypatch, extra_items):
    # given: items with one to three photos whose best colour scores are drawn from a few values (many
    # exact ties, some across items of the same name), some photos pending, and a few hand-set colours
    monkeypatch.setattr("catalog.services.text_search.WALK_CHUNK_ROWS", 4)  # several chunks a page
    monkeypatch.setattr("catalog.services.text_search.WALK_MAX_EXTRA_ITEMS", extra_items)
    rng = random.Random(8)
    for number in range(60):
        item = Item.objects.create(name=rng.choice(["Alpha", "beta", "Gamma", f"Item {number:02}"]))
        for _ in range(rng.randint(1, 3)):
            photo = Photo.objects.create(
                item=item, image="photos/x.jpg", embedding=b"\0" * 8,
                status=rng.choice([Photo.Status.TAGGED] * 5 + [Photo.Status.PENDING]),
            )
            source = rng.choice([Tag.Source.MODEL] * 6 + [Tag.Source.HAND])
            colour = rng.choice(["red", "red", "blue"])
            Tag.objects.create(photo=photo, attribute="colour", value=colour, score=rng.choice([0.3, 0.6, 0.6, 0.9]),
                               source=source)
            tags_best_mark(photo_ids=[photo.pk])

    # when: every page of "red", walked in score order and ranked by the database alone
    walked = [search_by_text(query="red", limit=5, offset=offset) for offset in range(0, 65, 5)]
    monkeypatch.setattr("catalog.services.text_search._best_photo_per_item_by_one_tag", lambda *a, **k: None)
    ranked = [search_by_text(query="red", limit=5, offset=offset) for offset in range(0, 65, 5)]

    # then: the same items, photos, scores and promises of more, page by page
    def shown(page):
        return [(hit.item.pk, hit.photo.pk, hit.score) for hit in page.hits], page.more

    assert [shown(page) for page in walked] == [shown(page) for page in ranked]
    assert sum(len(page.hits) for page in ranked) > 20 and not ranked[-1].hits
