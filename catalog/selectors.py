"""Read queries for pages and the API, shaped to keep query counts flat."""

from __future__ import annotations

from dataclasses import dataclass

from django.db.models import Case, Count, F, IntegerField, Prefetch, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber

from catalog.models import Item, Photo, Tag

# What a search result shows of an item (catalog.presenters.item_fields) and of its photo; the other
# columns (the 5 KB embedding, the item's description, timestamps) are left in the database.
RESULT_PHOTO_FIELDS = ("id", "item_id", "image")
RESULT_ITEM_FIELDS = ("id", "name", "brand", "price", "currency", "shop_url")


@dataclass(frozen=True)
class CandidatePhoto:
    """What ranking reads of a candidate photo: its item and each attribute's best tag, as plain values."""

    photo_id: int
    item_id: int
    tags: dict[str, str]
    tag_scores: dict[str, float]


def candidate_photos(*, photo_ids: list[int]) -> dict[int, CandidatePhoto]:
    """The tagged photos among `photo_ids` as plain rows, in two queries; deleted ids are simply absent.

    For ranking the index's candidates (200 a search). Rows, not model instances: building about
    1,200 photos, items and tags per search was most of a search's time (about 20 of 39 ms on a 100k
    catalog), and their reference cycles fed slow full garbage collections. Best tags follow
    `photo_tags_best`: hand-set first, then the highest score, exact ties to the oldest tag.
    """
    item_of = dict(Photo.objects.filter(pk__in=photo_ids, status=Photo.Status.TAGGED).values_list("pk", "item_id"))
    best: dict[int, dict[str, tuple[bool, float, str]]] = {photo_id: {} for photo_id in item_of}
    rows = (
        Tag.objects.filter(photo_id__in=list(item_of))
        .order_by("id")
        .values_list("photo_id", "attribute", "value", "score", "source")
    )
    for photo_id, attribute, value, score, source in rows:
        rank = (source == Tag.Source.HAND, score, value)
        current = best[photo_id].get(attribute)
        if current is None or rank[:2] > current[:2]:
            best[photo_id][attribute] = rank
    return {
        photo_id: CandidatePhoto(
            photo_id=photo_id,
            item_id=item_of[photo_id],
            tags={attribute: value for attribute, (_, _, value) in tags.items()},
            tag_scores={attribute: score for attribute, (_, score, _) in tags.items()},
        )
        for photo_id, tags in best.items()
    }


def candidate_photo_from(photo: Photo) -> CandidatePhoto:
    """The same row for a photo already loaded with its tags (the tag-filter scan)."""
    tags = photo_tags_best(photo=photo)
    return CandidatePhoto(
        photo_id=photo.pk,
        item_id=photo.item_id,
        tags={attribute: tag.value for attribute, tag in tags.items()},
        tag_scores={attribute: tag.score for attribute, tag in tags.items()},
    )


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


def _best_tags() -> Prefetch:
    """Each photo's best tag per attribute (as `photo_tags_best` ranks them) as `photo.tags`.

    A photo stores every tag above its recognizer's store threshold, several per attribute, and
    ranking needs one. Exact ties (same source and score) go to the oldest tag.
    """
    hand_first = Case(When(source=Tag.Source.HAND, then=Value(0)), default=Value(1), output_field=IntegerField())
    rank = Window(
        RowNumber(),
        partition_by=[F("photo_id"), F("attribute")],
        order_by=[hand_first.asc(), F("score").desc(), F("id").asc()],
    )
    best = Tag.objects.alias(rank=rank).filter(rank=1).order_by("attribute", "-score")
    return Prefetch("tags", queryset=best)


# A tag filter scans matching photos directly; past this many, the most confident ones are kept.
FILTER_SCAN_MAX_PHOTOS = 20_000


def photos_tagged_with(*, filters: dict[str, str]) -> dict[int, Photo]:
    """Tagged photos carrying every (attribute, value) of `filters`, with item and best tags, by id.

    Any stored tag qualifies here; callers keep those whose *best* tag matches. `photo.tags.all()`
    holds each attribute's best tag only.
    """
    queryset = Photo.objects.filter(status=Photo.Status.TAGGED, embedding__isnull=False)
    for attribute, value in filters.items():
        queryset = queryset.filter(pk__in=Tag.objects.filter(attribute=attribute, value=value).values("photo_id"))
    photos = queryset.select_related("item").prefetch_related(_best_tags()).order_by("pk")[:FILTER_SCAN_MAX_PHOTOS]
    return {photo.pk: photo for photo in photos}


def photo_tags_best(*, photo: Photo) -> dict[str, Tag]:
    """Each attribute's tag to show: a hand-set tag if there is one, else the best-scoring model tag."""
    best: dict[str, Tag] = {}
    for tag in photo.tags.all():
        current = best.get(tag.attribute)
        rank = (tag.source == Tag.Source.HAND, tag.score)
        if current is None or rank > (current.source == Tag.Source.HAND, current.score):
            best[tag.attribute] = tag
    return best


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
