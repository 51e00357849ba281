"""Reading rows a page at a time by key: every row once, at most `limit`, and only in pk order."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Group

from catalog.selectors import rows_by_key_pages

pytestmark = pytest.mark.django_db


@pytest.fixture
def groups() -> list[int]:
    return [Group.objects.create(name=f"g{i}").pk for i in range(7)]


@pytest.mark.parametrize("limit", [None, 7, 10, 5, 4, 1])
def test_every_row_comes_once_up_to_the_limit_whatever_the_page_size(groups, limit):
    rows = Group.objects.order_by("pk").values_list("pk", "name")
    read = [pk for pk, _ in rows_by_key_pages(rows, page=2, limit=limit)]
    assert read == groups[:limit]


def test_a_row_that_leaves_the_selection_between_pages_is_not_read_and_none_twice(groups):
    rows = Group.objects.filter(name__startswith="g").order_by("pk").values_list("pk", "name")
    read = []
    for pk, _ in rows_by_key_pages(rows, page=2):
        read.append(pk)
        if len(read) == 1:
            Group.objects.filter(pk=groups[3]).update(name="renamed")  # on a page not read yet
    assert read == groups[:3] + groups[4:]


def test_rows_in_another_order_are_refused():
    with pytest.raises(ValueError, match="ordered by pk"):
        list(rows_by_key_pages(Group.objects.order_by("-pk").values_list("pk"), page=2))
