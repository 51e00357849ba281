"""On PostgreSQL, text search's free words are answered from trigram indexes, not by reading every item."""

from __future__ import annotations

import json
from functools import reduce
from operator import or_

import pytest
from django.db import connection
from django.db.models import Q

from catalog.models import Item, Photo

pytestmark = [
    pytest.mark.django_db,
    pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's"),
]


def _indexes_used(queryset) -> set[str]:
    """The index names in the plan PostgreSQL makes for `queryset` when it may neither read a table whole
    nor walk a whole index (which a table this small would otherwise cost less)."""
    sql, params = queryset.query.sql_with_params()
    with connection.cursor() as cursor:
        cursor.execute("SET LOCAL enable_seqscan = off")
        cursor.execute("SET LOCAL enable_indexscan = off")
        cursor.execute(f"EXPLAIN (FORMAT JSON) {sql}", params)
        plan = cursor.fetchone()[0]

    def names(node: dict) -> set[str]:
        own = {node["Index Name"]} if "Index Name" in node else set()
        return own.union(*(names(child) for child in node.get("Plans", [])))

    return names((json.loads(plan) if isinstance(plan, str) else plan)[0]["Plan"])


def test_a_free_word_is_looked_up_in_the_name_brand_and_description_trigram_indexes():
    # given: a catalog of items with a photo each, and a word matched as text search matches it
    # (case-insensitively, anywhere in the name, brand or description)
    items = Item.objects.bulk_create(
        Item(name=f"Shirt {n}", brand=f"Brand {n % 40}", description=f"Cotton shirt number {n}.") for n in range(300)
    )
    Photo.objects.bulk_create(Photo(item=item, image="photos/x.jpg") for item in items)
    word = "linen"
    fields = ("item__name", "item__brand", "item__description")
    photos = Photo.objects.filter(reduce(or_, (Q(**{f"{field}__icontains": word}) for field in fields)))

    # then: each field's condition is answered by its own index, as Django writes it (UPPER(...) LIKE)
    assert {"item_name_trigram", "item_brand_trigram", "item_description_trigram"} <= _indexes_used(photos)
