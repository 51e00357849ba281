"""Read queries for pages and the API, shaped to keep query counts flat."""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from typing import TypeVar

from django.db.models import Count, ExpressionWrapper, F, FilteredRelation, FloatField, Q, QuerySet, Value

from catalog.models import Item, Photo, Tag

# What a search result shows of an item (catalog.presenters.item_fields) and of its photo; the other
# columns (the 5 KB embedding, the item's description, timestamps) are left in the database.
RESULT_PHOTO_FIELDS = ("id", "item_id", "image")
RESULT_ITEM_FIELDS = ("id", "name", "brand", "price", "currency", "shop_url")

T = TypeVar("T")


@dataclass(frozen=True)
class CandidatePhoto:
    """What ranking reads of a candidate photo: its item and each attribute's best tag, as plain values."""

    photo_id: int
    item_id: int
    tags: dict[str, str]
    tag_scores: dict[str, float]


def candidate_photos(*, photo_ids: list[int]) -> dict[int, CandidatePhoto]:
    """The tagged photos among `photo_ids` as plain rows, in one query; deleted ids are simply absent.

    For ranking the index's candidates (200 a search). Rows, not model instances: building about
    1,200 photos, items and tags per search was most of a search's time (about 20 of 39 ms on a 100k
    catalog), and their reference cycles fed slow full garbage collections. Each attribute's tag is
    the marked best one (`Tag.is_best`, as `photo_tags_best` ranks them), joined to its photo: one
    row a tag shown, not every stored tag ranked here (16 -> 11 ms for 200 photos at 100k).
    """
    rows = (
        Photo.objects.filter(pk__in=photo_ids, status=Photo.Status.TAGGED)
        .annotate(best=FilteredRelation("tags", condition=Q(tags__is_best=True)))
        .values_list("pk", "item_id", "best__attribute", "best__value", "best__score")
    )
    photos: dict[int, CandidatePhoto] = {}
    for photo_id, item_id, attribute, value, score in rows:
        photo = photos.get(photo_id)
        if photo is None:
            photo = photos[photo_id] = CandidatePhoto(photo_id=photo_id, item_id=item_id, tags={}, tag_scores={})
        if attribute is not None:  # a tagged photo without tags comes once, with no tag
            photo.tags[attribute] = value
            photo.tag_scores[attribute] = score
    return photos


def photos_for_results(*, photo_ids: list[int]) -> dict[int, Photo]:
    """Photos with their items, only the fields a result shows (RESULT_PHOTO_FIELDS, RESULT_ITEM_FIELDS).

    One query, for the page of results only. Reading another field of these photos or items costs a
    query each.
    """
    photos = (
        Photo.objects.filter(pk__in=photo_ids)
        .select_related("item")
        .only(*RESULT_PHOTO_FIELDS, *(f"item__{name}" for name in RESULT_ITEM_FIELDS))
    )
    return {photo.pk: photo for photo in photos}


def best_tags_valued(*, attribute: str, value: str) -> QuerySet[Tag]:
    """The best tags (`Tag.is_best`) of `attribute` that have `value`: how a filter by tag matches a photo,
    read from the best tags' own index."""
    return Tag.objects.filter(is_best=True, attribute=attribute, value=value)


def photos_tagged_query(*, filters: dict[str, str]) -> QuerySet[Photo]:
    """Tagged, embedded photos whose best tag (`Tag.is_best`) of each attribute of `filters` has its value.

    A query, not rows, so callers narrow, count or stream it in the database; every matching photo of
    the catalog is in it, read from the best tags' own index.
    """
    queryset = Photo.objects.filter(status=Photo.Status.TAGGED, embedding__isnull=False)
    for attribute, value in filters.items():
        best = best_tags_valued(attribute=attribute, value=value)
        queryset = queryset.filter(pk__in=best.values("photo_id"))
    return queryset


def photo_ids_best_tagged(*, filters: dict[str, str]) -> list[int]:
    """Ids of the photos whose best tag of each attribute of `filters` has its value, from the best tags'
    index alone, without reading a photo row.

    For narrowing the vector index, which holds only tagged, embedded photos (the candidates' read
    checks the status again): 7 against 31 ms for colour=red's 7,219 photos at 100k on PostgreSQL.
    """
    (attribute, value), *others = filters.items()
    tags = best_tags_valued(attribute=attribute, value=value)
    for attribute, value in others:
        tags = tags.filter(photo_id__in=best_tags_valued(attribute=attribute, value=value).values("photo_id"))
    return list(tags.order_by().values_list("photo_id", flat=True))


def photos_best_tags_scored(*, photos: QuerySet[Photo], filters: dict[str, str]) -> QuerySet[Photo]:
    """The photos of `photos` whose best tag of each attribute of `filters` has its value, annotated with
    `match_score`: the mean score of those tags.

    A query, so callers group, order and cut every match of a large catalog in the database (about 20k
    photos for style=casual at 100k). One join a filter, to that attribute's best tag: no subquery,
    and each tag's score comes with it. The join is required through the score, which the best tags'
    index holds, so PostgreSQL reads them from the index alone (18 -> 9 ms for three filters at 100k).
    """
    joins = {
        f"best_{number}": FilteredRelation(
            "tags", condition=Q(tags__is_best=True, tags__attribute=attribute, tags__value=value)
        )
        for number, (attribute, value) in enumerate(filters.items())
    }
    if not joins:
        return photos.annotate(match_score=Value(0.0, output_field=FloatField()))
    scores = [F(f"{name}__score") for name in joins]
    return (
        photos.annotate(**joins)
        .filter(**{f"{name}__score__isnull": False for name in joins})
        .annotate(match_score=ExpressionWrapper(sum(scores[1:], scores[0]) / len(scores), output_field=FloatField()))
    )


def best_tag_ids(*, photo_ids: list[int]) -> list[int]:
    """The id of each photo's best tag per attribute, as `photo_tags_best` ranks them, from the stored tags."""
    best: dict[int, dict[str, tuple[bool, float, int]]] = {}
    rows = Tag.objects.filter(photo_id__in=photo_ids).order_by("id").values_list(
        "pk", "photo_id", "attribute", "score", "source"
    )
    for pk, photo_id, attribute, score, source in rows:
        _keep_best(best.setdefault(photo_id, {}), attribute, pk, score, source)
    return [entry[2] for by_attribute in best.values() for entry in by_attribute.values()]


def photo_tags_best(*, photo: Photo) -> dict[str, Tag]:
    """Each attribute's tag to show: a hand-set tag if there is one, else the best-scoring model tag; the
    older on an exact tie, as every other read of best tags decides."""
    best: dict[str, tuple[bool, float, Tag]] = {}
    for tag in sorted(photo.tags.all(), key=lambda tag: tag.pk):
        _keep_best(best, tag.attribute, tag, tag.score, tag.source)
    return {attribute: entry[2] for attribute, entry in best.items()}


def _tag_rank(source: str, score: float) -> tuple[bool, float]:
    """How tags of one attribute compare: hand-set first, then the higher score."""
    return source == Tag.Source.HAND, score


def _keep_best(best: dict[str, tuple[bool, float, T]], attribute: str, value: T, score: float, source: str) -> None:
    """Keep `value` (a tag, its value or its id) as the attribute's best if it ranks above the current one
    (rows come oldest first)."""
    current = best.get(attribute)
    if current is None or _tag_rank(source, score) > current[:2]:
        best[attribute] = (*_tag_rank(source, score), value)


def tagging_counts() -> dict[str, int]:
    """How many catalog photos are tagged, pending and failed."""
    counts = Photo.objects.aggregate(
        tagged=Count("pk", filter=Q(status=Photo.Status.TAGGED)),
        pending=Count("pk", filter=Q(status=Photo.Status.PENDING)),
        failed=Count("pk", filter=Q(status=Photo.Status.FAILED)),
    )
    return {key: int(value) for key, value in counts.items()}


def items_for_listing() -> QuerySet[Item]:
    return Item.objects.prefetch_related("photos")


def rows_by_key_pages(rows: QuerySet, *, page: int, limit: int | None = None) -> Iterator[tuple]:
    """The rows of `rows` (a values_list led by the pk, ordered by pk), at most `limit`, read `page` at a
    time by key.

    Each page is read whole before its rows are used, so no statement stays open while the caller
    writes. With `.iterator()` it did, and on SQLite (WAL) the caller's next write transaction failed
    at once, "database is locked", as soon as another process had committed meanwhile (`retag` beside
    an admin save).
    """
    if tuple(rows.query.order_by) != ("pk",):  # pages follow one another by pk: any other order repeats rows
        raise ValueError(f"rows_by_key_pages needs rows ordered by pk, not {rows.query.order_by}")
    last, left = None, limit
    while left is None or left > 0:
        size = page if left is None else min(page, left)
        chunk = list((rows if last is None else rows.filter(pk__gt=last))[:size])
        yield from chunk
        if len(chunk) < size:
            return
        last = chunk[-1][0]
        left = None if left is None else left - len(chunk)
