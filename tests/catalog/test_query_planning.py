"""PostgreSQL plans tag queries from estimates it can trust: a value belongs to one attribute.

Without statistics on the pair, the planner multiplied `attribute = 'colour'` by `value IN (...)` as
independent, guessed a quarter of the matching tags, and Complete the look's queries hashed every
matching tag (87 ms each at 100k photos) instead of walking photos in id order (2 ms).
"""

from __future__ import annotations

import json

import pytest
from django.db import connection

from catalog.models import Item, Photo, Tag

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="planner statistics are PostgreSQL's"),
]

PHOTOS = 600
COLOURS = ["black", "white", "red", "blue", "green", "pink"]


def _tagged_catalog() -> None:
    item = Item.objects.create(name="Shirt", shop_url="https://shop.example.com/shirt")
    photos = Photo.objects.bulk_create(
        Photo(item=item, image=f"photos/{n}.jpg", status=Photo.Status.TAGGED) for n in range(PHOTOS)
    )
    Tag.objects.bulk_create(
        Tag(photo=photo, attribute=attribute, value=value, source=Tag.Source.MODEL)
        for n, photo in enumerate(photos)
        for attribute, value in [
            ("type", "shirt"),
            ("colour", COLOURS[n % len(COLOURS)]),
            ("pattern", "plain"),
            ("style", "casual"),
        ]
    )


def _estimated_rows(sql: str, params: list[str]) -> float:
    with connection.cursor() as cursor:
        cursor.execute("ANALYZE catalog_tag")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]
    return (json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"]["Plan Rows"]


def test_the_planner_estimates_photos_with_a_colour_tag_close_to_their_number():
    _tagged_catalog()
    neutrals = ["black", "white"]
    matching = Tag.objects.filter(attribute="colour", value__in=neutrals).count()

    estimate = _estimated_rows(
        "SELECT photo_id FROM catalog_tag WHERE attribute = %s AND value IN (%s, %s)", ["colour", *neutrals]
    )

    assert matching == PHOTOS // 3
    assert matching / 2 <= estimate <= matching * 2, f"estimated {estimate} rows for {matching}"
