"""A search fills the page it is asked for whenever the catalog holds that many items."""

from __future__ import annotations

import numpy as np
import pytest

from catalog.models import Item, Tag
from catalog.services.best_tags import tags_best_mark
from catalog.services.index import index_sync
from catalog.services.search import CANDIDATE_PHOTOS, FILTER_CANDIDATE_PHOTOS, search_by_embedding
from recognition.services import EMBEDDING_DIM
from tests.catalog.embedded_photos import embedded_photo, unit

pytestmark = pytest.mark.django_db

RNG = np.random.default_rng(7)


def item_with_photos(name: str, centre: np.ndarray, photos: int, colour: str | None = None) -> Item:
    item = Item.objects.create(name=name)
    for _ in range(photos):
        photo = embedded_photo(item, unit(centre + 0.005 * RNG.standard_normal(EMBEDDING_DIM)))
        if colour:
            Tag.objects.create(photo=photo, attribute="colour", value=colour, score=0.9, source=Tag.Source.MODEL)
    tags_best_mark(photo_ids=list(item.photos.values_list("pk", flat=True)))
    return item


def test_items_with_many_near_identical_photos_still_fill_a_page_of_fifty():
    # 100 items of 6 near-identical photos: the first 200 candidate photos hold only about 34 items.
    photos_per_item = 6
    for number in range(100):
        item_with_photos(f"look {number}", RNG.standard_normal(EMBEDDING_DIM), photos_per_item)
    index_sync()
    assert CANDIDATE_PHOTOS // photos_per_item < 50

    hits = search_by_embedding(embedding=unit(RNG.standard_normal(EMBEDDING_DIM)), predictions={}, limit=50)

    assert len(hits) == 50
    assert len({hit.item.pk for hit in hits}) == 50


def test_a_refine_among_items_with_many_near_identical_photos_still_fills_a_page_of_fifty():
    # 60 red items of 12 near-identical photos: the 500 nearest red photos hold only about 42 items
    photos_per_item = 12
    for number in range(60):
        item_with_photos(f"red {number}", RNG.standard_normal(EMBEDDING_DIM), photos_per_item, colour="red")
        item_with_photos(f"blue {number}", RNG.standard_normal(EMBEDDING_DIM), 1, colour="blue")
    index_sync()
    assert FILTER_CANDIDATE_PHOTOS // photos_per_item < 50

    hits = search_by_embedding(
        embedding=unit(RNG.standard_normal(EMBEDDING_DIM)), predictions={}, filters={"colour": "red"}, limit=50
    )

    assert len({hit.item.pk for hit in hits}) == 50
    assert all(hit.item.name.startswith("red") for hit in hits)


def test_a_catalog_smaller_than_the_page_returns_every_item_once():
    for number in range(3):
        item_with_photos(f"look {number}", RNG.standard_normal(EMBEDDING_DIM), 4)
    index_sync()

    hits = search_by_embedding(embedding=unit(RNG.standard_normal(EMBEDDING_DIM)), predictions={}, limit=50)

    assert sorted(hit.item.name for hit in hits) == ["look 0", "look 1", "look 2"]


def test_a_photo_search_reads_the_database_in_three_queries(tagged_catalog, django_assert_num_queries):
    # given a process that has searched once (models and index loaded)
    from PIL import Image

    from catalog.services.search import search_by_image

    search_by_image(image=Image.new("RGB", (300, 400), "navy"))

    # when / then: the live recognizers, the candidates with their best tags, and the page of results
    with django_assert_num_queries(3):
        result = search_by_image(image=Image.new("RGB", (300, 400), "white"), limit=12)
    assert len(result.hits) == 12 and result.predictions
