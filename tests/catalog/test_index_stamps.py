"""Each indexed vector's stamp is its photo's tagging time in microseconds, however the database computes it."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest
from django.db import connection

from catalog.models import Photo
from catalog.services.index_stamps import (
    _PG_ID_TIME_ROW,
    NO_TAGGED_AT_STAMP,
    _pg_binary_copy_rows,
    _tagged_photo_stamps_postgresql,
    photo_index_stamp,
    tagged_photo_stamps,
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

    ids, stamps = tagged_photo_stamps()

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


def binary_copy(rows: list[tuple[int, int]]) -> bytes:
    """A binary COPY of (id, time) rows as PostgreSQL writes it (manual: COPY, "Binary Format")."""
    header = b"PGCOPY\n\xff\r\n\x00" + (0).to_bytes(4, "big") + (0).to_bytes(4, "big")
    body = b"".join(
        (2).to_bytes(2, "big") + (8).to_bytes(4, "big") + photo_id.to_bytes(8, "big", signed=True)
        + (8).to_bytes(4, "big") + time.to_bytes(8, "big", signed=True)
        for photo_id, time in rows
    )
    return header + body + b"\xff\xff"


def test_a_binary_copy_is_read_whole_or_refused():
    copied = binary_copy([(7, 1), (3, -5)])
    rows = _pg_binary_copy_rows(memoryview(copied), _PG_ID_TIME_ROW)
    assert rows["id"].tolist() == [7, 3] and rows["tagged_at"].tolist() == [1, -5]
    cut_short = copied[:-2]
    a_row_cut_short = copied[:-9] + b"\xff\xff"
    a_field_of_another_length = copied[:19] + copied[19:].replace(b"\x00\x00\x00\x08", b"\x00\x00\x00\x04", 1)
    for damaged in (cut_short, a_row_cut_short, a_field_of_another_length):
        with pytest.raises(ValueError):
            _pg_binary_copy_rows(memoryview(damaged), _PG_ID_TIME_ROW)
