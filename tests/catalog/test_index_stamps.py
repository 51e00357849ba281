"""Each indexed vector's stamp is its photo's tagging time in microseconds, however the database computes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from catalog.models import Photo
from catalog.services.index import (
    NO_TAGGED_AT_STAMP,
    _tagged_photo_stamps,
    _tagged_photo_stamps_postgresql,
    photo_index_stamp,
)

pytestmark = pytest.mark.django_db

TAGGING_TIMES = [
    datetime(2026, 12, 1, 18, 4, 21, 0, tzinfo=UTC),
    datetime(2026, 12, 1, 18, 4, 21, 1, tzinfo=UTC),
    datetime(2026, 12, 1, 18, 4, 21, 499_999, tzinfo=UTC),
    datetime(2026, 12, 1, 18, 4, 21, 500_001, tzinfo=UTC),
    datetime(2026, 12, 1, 18, 4, 21, 999_999, tzinfo=UTC),
    datetime(2038, 1, 19, 3, 14, 8, 123_457, tzinfo=UTC),
    datetime(1999, 12, 31, 23, 59, 59, 999_999, tzinfo=UTC),  # before PostgreSQL's epoch
    None,  # tagged before tagging times were recorded
]


def test_stamps_are_the_tagging_times_in_microseconds_exactly(tagged_catalog):
    photos = list(Photo.objects.order_by("pk")[: len(TAGGING_TIMES)])
    for photo, tagged_at in zip(photos, TAGGING_TIMES, strict=True):
        Photo.objects.filter(pk=photo.pk).update(tagged_at=tagged_at)

    ids, stamps = _tagged_photo_stamps()

    by_id = dict(zip(ids.tolist(), stamps.tolist(), strict=True))
    assert [by_id[photo.pk] for photo in photos] == [photo_index_stamp(t) for t in TAGGING_TIMES]
    assert by_id[photos[-1].pk] == NO_TAGGED_AT_STAMP
    assert by_id[photos[0].pk] == 1_796_148_261_000_000  # `date -u -d @1796148261`: Tue Dec 1 18:04:21 UTC 2026
    assert by_id[photos[1].pk] - by_id[photos[0].pk] == 1
    assert ids.tolist() == sorted(Photo.objects.filter(status=Photo.Status.TAGGED).values_list("pk", flat=True))


@pytest.mark.skipif(connection.vendor != "postgresql", reason="the stamps computed by PostgreSQL")
def test_postgresql_computes_the_same_stamps_as_python(tagged_catalog):
    photos = list(Photo.objects.order_by("pk")[: len(TAGGING_TIMES)])
    for photo, tagged_at in zip(photos, TAGGING_TIMES, strict=True):
        Photo.objects.filter(pk=photo.pk).update(tagged_at=tagged_at)
    untagged = Photo.objects.order_by("-pk").first()
    Photo.objects.filter(pk=untagged.pk).update(status=Photo.Status.PENDING)

    ids, stamps = _tagged_photo_stamps_postgresql()

    rows = Photo.objects.filter(status=Photo.Status.TAGGED).order_by("pk").values_list("pk", "tagged_at")
    assert ids.tolist() == [pk for pk, _ in rows] and untagged.pk not in ids
    assert stamps[ids.tolist().index(photos[-1].pk)] == NO_TAGGED_AT_STAMP
    assert stamps.tolist() == [photo_index_stamp(tagged_at) for _, tagged_at in rows]
