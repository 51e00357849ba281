"""Read queries for pages and the API, shaped to keep query counts flat."""

from __future__ import annotations

from django.db.models import Count, Prefetch, Q, QuerySet

from catalog.models import Item, Photo, Tag


def photos_with_items_and_tags(*, photo_ids: list[int]) -> dict[int, Photo]:
    """Photos by id with their item and tags loaded in two queries; deleted ids are simply absent."""
    photos = (
        Photo.objects.filter(pk__in=photo_ids, status=Photo.Status.TAGGED)
        .defer("embedding")  # 5 KB a photo that ranking does not need: the index has the vectors
        .select_related("item")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("attribute", "-score")))
    )
    return {photo.pk: photo for photo in photos}


# A tag filter scans matching photos directly; past this many, the most confident ones are kept.
FILTER_SCAN_MAX_PHOTOS = 20_000


def photos_tagged_with(*, filters: dict[str, str]) -> dict[int, Photo]:
    """Tagged photos carrying every (attribute, value) of `filters`, with item and tags, by id.

    Any stored tag qualifies here; callers keep those whose *best* tag matches.
    """
    queryset = Photo.objects.filter(status=Photo.Status.TAGGED, embedding__isnull=False)
    for attribute, value in filters.items():
        queryset = queryset.filter(pk__in=Tag.objects.filter(attribute=attribute, value=value).values("photo_id"))
    photos = (
        queryset.select_related("item")
        .prefetch_related(Prefetch("tags", queryset=Tag.objects.order_by("attribute", "-score")))
        .order_by("pk")[:FILTER_SCAN_MAX_PHOTOS]
    )
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
