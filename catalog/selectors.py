"""Read queries for pages and the API, shaped to keep query counts flat."""

from __future__ import annotations

from django.db.models import Case, Count, F, IntegerField, Prefetch, Q, QuerySet, Value, When, Window
from django.db.models.functions import RowNumber

from catalog.models import Item, Photo, Tag

# What a search result shows of an item (catalog.presenters.item_fields) and of its photo; the other
# columns (the 5 KB embedding, the item's description, timestamps) are left in the database.
RESULT_PHOTO_FIELDS = ("id", "item_id", "image")
RESULT_ITEM_FIELDS = ("id", "name", "brand", "price", "currency", "shop_url")


def photos_with_items_and_best_tags(*, photo_ids: list[int]) -> dict[int, Photo]:
    """Tagged photos by id with their item and best tags, in two queries; deleted ids are simply absent.

    For ranking the index's candidates (200 a search). `photo.tags.all()` holds each attribute's best
    tag only, the one `photo_tags_best` picks, so that it gives the same answer as with every tag
    loaded. Only RESULT_PHOTO_FIELDS and RESULT_ITEM_FIELDS are loaded: reading another field of these
    photos or items costs a query each.
    """
    photos = (
        Photo.objects.filter(pk__in=photo_ids, status=Photo.Status.TAGGED)
        .select_related("item")
        .only(*RESULT_PHOTO_FIELDS, *(f"item__{name}" for name in RESULT_ITEM_FIELDS))
        .prefetch_related(_best_tags())
    )
    return {photo.pk: photo for photo in photos}


def _best_tags() -> Prefetch:
    """Each photo's best tag per attribute (as `photo_tags_best` ranks them) as `photo.tags`.

    Building model instances is most of a candidate fetch's cost (the queries take ~2 ms each for
    200 photos of a 100,000-item catalog on PostgreSQL); a photo stores every tag above its
    recognizer's store threshold, several per attribute, and ranking needs one. Exact ties (same
    source and score) go to the oldest tag, where the database's order decided before.
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

    Any stored tag qualifies here; callers keep those whose *best* tag matches. As in
    `photos_with_items_and_best_tags`, `photo.tags.all()` holds each attribute's best tag only.
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
