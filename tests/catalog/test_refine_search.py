"""Refining a photo search ("same, but in red") ranks every matching photo of the catalog, old or new."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.models import Item, Tag
from catalog.services.best_tags import tags_best_mark
from catalog.services.index import index_sync
from catalog.services.search import search_by_embedding
from recognition.recognizers import Prediction
from recognition.services import EMBEDDING_DIM
from tests.catalog.embedded_photos import embedded_photo, unit

pytestmark = pytest.mark.django_db

RNG = np.random.default_rng(11)


def photo(name: str, vector: np.ndarray, colour: str) -> Item:
    item = Item.objects.create(name=name)
    tagged = embedded_photo(item, vector)
    Tag.objects.create(photo=tagged, attribute="colour", value=colour, score=0.9, source=Tag.Source.MODEL)
    tags_best_mark(photo_ids=[tagged.pk])  # as every writer of tags does
    return item


def index_kind(settings, monkeypatch, flat_max_items: int, scan_per_root: int) -> None:
    """An exact index up to `flat_max_items` photos, else HNSW, which compares up to `scan_per_root`
    times the root of its size matching photos one by one and walks its graph past that."""
    settings.FLAT_INDEX_MAX_ITEMS = flat_max_items
    monkeypatch.setattr("recognition.index.SCAN_AMONG_MATCHES_PER_ROOT", scan_per_root)


def test_refine_finds_the_newest_matching_photo_among_older_ones_and_nearer_other_colours():
    # given: red photos, the newest one the very photo searched for, and blue photos nearer the query
    # than the older red ones
    query = unit(RNG.standard_normal(EMBEDDING_DIM))
    for number in range(3):
        photo(f"old red {number}", unit(RNG.standard_normal(EMBEDDING_DIM)), "red")
        photo(f"blue {number}", unit(query + 0.3 * unit(RNG.standard_normal(EMBEDDING_DIM))), "blue")
    newest = photo("new red", query, "red")
    index_sync()

    # when
    hits = search_by_embedding(embedding=query, predictions={}, filters={"colour": "red"}, limit=12)

    # then: the newest red photo comes first, and every red item and nothing else is ranked
    assert hits[0].item == newest
    assert hits[0].visual == pytest.approx(1.0)
    assert sorted(hit.item.name for hit in hits) == ["new red", "old red 0", "old red 1", "old red 2"]


@pytest.mark.parametrize(
    ("flat_max_items", "scan_per_root"),
    [(10_000, 120), (10, 120), (10, 0)],
    ids=["flat index", "hnsw, matches scanned", "hnsw, graph walked"],
)
def test_refine_ranks_matching_items_as_brute_force_does(settings, monkeypatch, flat_max_items, scan_per_root):
    # given: 80 photos, half of them red, and fewer candidates than red photos
    index_kind(settings, monkeypatch, flat_max_items, scan_per_root)
    monkeypatch.setattr("catalog.services.search.FILTER_CANDIDATE_PHOTOS", 8)
    vectors = {}
    for number in range(80):
        colour = "red" if number % 2 else "blue"
        vector = unit(RNG.standard_normal(EMBEDDING_DIM))
        vectors[photo(f"{colour} {number}", vector, colour).pk] = vector if colour == "red" else None
    index_sync()
    query = unit(RNG.standard_normal(EMBEDDING_DIM))

    # when
    hits = search_by_embedding(embedding=query, predictions={}, filters={"colour": "red"}, limit=5)

    # then: the five red items nearest the query, nearest first
    nearest = sorted((pk for pk, v in vectors.items() if v is not None), key=lambda pk: -float(vectors[pk] @ query))
    assert [hit.item.pk for hit in hits] == nearest[:5]


@pytest.mark.parametrize(
    ("flat_max_items", "scan_per_root"),
    [(10_000, 120), (10, 120), (10, 0)],
    ids=["flat index", "hnsw, matches scanned", "hnsw, graph walked"],
)
def test_photos_whose_red_is_only_a_weak_second_guess_take_no_candidate_place_from_red_ones(
    settings, monkeypatch, flat_max_items, scan_per_root
):
    # given: fewer candidate places than photos carrying a red tag; the orange photos nearest the query
    # hold red only as a weak second guess, the four red photos farther away hold it as their best
    index_kind(settings, monkeypatch, flat_max_items, scan_per_root)
    monkeypatch.setattr("catalog.services.search.FILTER_CANDIDATE_PHOTOS", 4)
    query = unit(RNG.standard_normal(EMBEDDING_DIM))
    for number in range(6):
        orange = photo(f"orange {number}", unit(query + 0.2 * unit(RNG.standard_normal(EMBEDDING_DIM))), "orange")
        Tag.objects.create(
            photo=orange.photos.get(), attribute="colour", value="red", score=0.1, source=Tag.Source.MODEL
        )
        tags_best_mark(photo_ids=[orange.photos.get().pk])
    for number in range(4):
        photo(f"red {number}", unit(RNG.standard_normal(EMBEDDING_DIM)), "red")
    index_sync()

    # when
    hits = search_by_embedding(embedding=query, predictions={}, filters={"colour": "red"}, limit=12)

    # then: the four red items, and no orange one
    assert sorted(hit.item.name for hit in hits) == ["red 0", "red 1", "red 2", "red 3"]


def test_why_it_matched_names_what_the_item_shares_with_the_photo_not_the_shoppers_own_filter():
    # given: a red dress, and a photo seen as a blue dress refined to red
    query = unit(RNG.standard_normal(EMBEDDING_DIM))
    dress = photo("red dress", query, "red")
    Tag.objects.create(photo=dress.photos.get(), attribute="type", value="dress", score=0.9, source=Tag.Source.MODEL)
    tags_best_mark(photo_ids=[dress.photos.get().pk])
    index_sync()
    seen = {"type": [Prediction("dress", 0.8)], "colour": [Prediction("blue", 0.7)]}

    # when
    hits = search_by_embedding(embedding=query, predictions=seen, filters={"colour": "red"}, limit=12)

    # then: the type is shared with the photo; red is only what the shopper asked for
    assert hits[0].why == "same type: dress · visual similarity 1.00"
