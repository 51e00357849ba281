"""Complete the look: a stylist's rule book for which catalog items go with a garment.

Rules, in order:
1. Complementary types only: a top goes with bottoms, shoes, outerwear and a hat; a dress with shoes,
   outerwear and a hat; never two pieces that fill the same place on the body.
2. Colours must go together: neutrals (black, white, grey, beige, navy, brown) go with anything,
   a colour goes with itself, and clashing hue pairs (red with pink, orange or purple ...) are left out.
3. Styles should agree: the same style scores best, a neighbouring one (casual and sporty, business
   and formal, party and formal) scores half, anything else nothing.
4. Items that merchants put together in curated looks rank higher for each other.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass

from django.db.models import Count, Exists, OuterRef, Q

from catalog.models import Item, Photo, Tag
from catalog.selectors import candidate_photos, photo_tags_best, photos_for_results, photos_tagged_query
from recognition.labels import LABEL_SETS

BODY_PLACE: dict[str, str] = {
    "t-shirt": "top", "shirt": "top", "longsleeve": "top",
    "pants": "bottom", "shorts": "bottom", "skirt": "bottom",
    "dress": "dress", "outwear": "outerwear", "shoes": "shoes", "hat": "hat",
}
COMPLEMENTS: dict[str, tuple[str, ...]] = {
    "top": ("bottom", "shoes", "outerwear", "hat"),
    "bottom": ("top", "shoes", "outerwear", "hat"),
    "dress": ("shoes", "outerwear", "hat"),
    "outerwear": ("top", "bottom", "dress", "shoes", "hat"),
    "shoes": ("top", "bottom", "dress", "outerwear"),
    "hat": ("top", "bottom", "dress", "outerwear"),
}
NEUTRAL_COLOURS = frozenset({"black", "white", "grey", "beige", "navy", "brown"})
CLASHING_COLOURS = frozenset(
    frozenset(pair)
    for pair in [
        ("red", "pink"), ("red", "orange"), ("red", "purple"), ("pink", "orange"),
        ("orange", "purple"), ("green", "red"), ("green", "pink"), ("yellow", "purple"),
    ]
)
NEIGHBOUR_STYLES = frozenset(
    frozenset(pair) for pair in [("casual", "sporty"), ("business", "formal"), ("party", "formal")]
)
STYLE_SAME_POINTS, STYLE_NEIGHBOUR_POINTS = 1.0, 0.5
COLOUR_NEUTRAL_POINTS, COLOUR_SAME_POINTS, COLOUR_OTHER_POINTS = 1.0, 0.8, 0.3
# Per curated look that holds both items: a merchant's explicit pairing outweighs a style mismatch.
CURATED_LOOK_POINTS = 1.5
ITEMS_PER_PLACE = 3
# Photos of one score level read per query; most places fill from the first batch of the best level.
LOOK_BATCH_PHOTOS = 50
# A place with at most this many photos (hats in a catalog of shirts) has each scored: reading its
# score levels one by one would walk the whole catalog once per level.
LOOK_SMALL_PLACE_PHOTOS = 1000
# The most batches read for one place, all levels together. Levels are read from best tags, so most
# places fill from their first batch; the cap bounds a walk through many photos of a few items (an
# item counts once). Past it, the place is filled from its first photos, scored one by one, so in that
# case a better item further on can be missed: bounded cost over exactness, for one widget.
LOOK_MAX_BATCHES = 10
# Stands for any value outside a label set (a merchant's own) when asking the rules what it earns.
UNLISTED_VALUE = "\0unlisted"


def colours_go_together(anchor: str | None, other: str | None) -> tuple[float, str] | None:
    """Points and a reason when two colours go together, None when they clash."""
    if anchor is None or other is None:
        return COLOUR_OTHER_POINTS, "colour unknown"
    if frozenset({anchor, other}) in CLASHING_COLOURS:
        return None
    if other in NEUTRAL_COLOURS or anchor in NEUTRAL_COLOURS:
        neutral = other if other in NEUTRAL_COLOURS else anchor
        return COLOUR_NEUTRAL_POINTS, f"{neutral} is a neutral"
    if anchor == other:
        return COLOUR_SAME_POINTS, f"tonal {anchor}"
    return COLOUR_OTHER_POINTS, f"{other} with {anchor}"


def styles_go_together(anchor: str | None, other: str | None) -> tuple[float, str]:
    if anchor is None or other is None:
        return 0.0, ""
    if anchor == other:
        return STYLE_SAME_POINTS, f"both {anchor}"
    if frozenset({anchor, other}) in NEIGHBOUR_STYLES:
        return STYLE_NEIGHBOUR_POINTS, f"{other} suits {anchor}"
    return 0.0, ""


def pairing_score(
    anchor_tags: dict[str, str], other_tags: dict[str, str], *, curated_together: int = 0
) -> tuple[float, str] | None:
    """How well `other` completes a look around `anchor`, with the reason; None when it must not."""
    anchor_place = BODY_PLACE.get(anchor_tags.get("type", ""))
    other_place = BODY_PLACE.get(other_tags.get("type", ""))
    if anchor_place is None or other_place not in COMPLEMENTS[anchor_place]:
        return None
    colour = colours_go_together(anchor_tags.get("colour"), other_tags.get("colour"))
    if colour is None:
        return None
    style_points, style_reason = styles_go_together(anchor_tags.get("style"), other_tags.get("style"))
    score = colour[0] + style_points + CURATED_LOOK_POINTS * curated_together
    reasons = [r for r in (colour[1] if colour[1] != "colour unknown" else "", style_reason) if r]
    if curated_together:
        reasons.append("styled together in a curated look")
    return score, " · ".join(reasons) or f"{other_place} for a {anchor_place}"


@dataclass(frozen=True)
class LookSuggestion:
    item: Item
    photo: Photo
    place: str
    score: float
    reason: str
    tags: dict[str, str]


@dataclass(frozen=True)
class _Pairing:
    photo_id: int
    item_id: int
    place: str
    score: float
    reason: str
    tags: dict[str, str]


def look_suggest(
    *, anchor_tags: dict[str, str], anchor_item: Item | None = None, per_place: int = ITEMS_PER_PLACE
) -> dict[str, list[LookSuggestion]]:
    """The best items for each complementary place, keyed by place in the rule book's order.

    Every tagged photo of the catalog can be suggested (but see LOOK_MAX_BATCHES); an item scores as
    its best photo for the place (an item whose photos show pieces for two places, a set, may be
    suggested for both), and equal scores go to the older photo. The rules score only tags, so no
    embedding is read: the database is asked, place by place, for the photos of each score level in
    turn, best level first (`_place_best`), and only the curated partners are read whole. A few small
    queries a place, at most about 25.
    """
    anchor_place = BODY_PLACE.get(anchor_tags.get("type", ""))
    if anchor_place is None:
        return {}
    curated = looks_shared_counts(item=anchor_item) if anchor_item else {}
    exclude_item_id = anchor_item.pk if anchor_item else None
    curated_photos = photos_tagged_query(filters={}).filter(item_id__in=list(curated)).order_by("pk")
    partners = _pairings(anchor_tags, list(curated_photos.values_list("pk", flat=True)), curated)
    # Built when a large place first needs them, then shared: a dozen tag subqueries, ~4 ms of Django each time.
    levels = functools.cache(lambda: _score_levels(anchor_tags))
    chosen: dict[str, list[_Pairing]] = {}
    for place in COMPLEMENTS[anchor_place]:
        best = {p.item_id: p for p in _place_best(anchor_tags, levels, place, per_place, exclude_item_id)}
        for pairing in partners.values():
            if pairing.place == place and pairing.score >= best.get(pairing.item_id, pairing).score:
                best[pairing.item_id] = pairing
        ranked = sorted(best.values(), key=_rank)[:per_place]
        if ranked:
            chosen[place] = ranked
    shown = photos_for_results(photo_ids=[p.photo_id for ranked in chosen.values() for p in ranked])
    return {
        place: [
            LookSuggestion(
                item=shown[p.photo_id].item, photo=shown[p.photo_id], place=place, score=p.score, reason=p.reason,
                tags=p.tags,
            )
            for p in ranked
            if p.photo_id in shown  # deleted between the queries
        ]
        for place, ranked in chosen.items()
    }


def _pairings(
    anchor_tags: dict[str, str], photo_ids: list[int], curated: dict[int, int]
) -> dict[tuple[int, str], _Pairing]:
    """Each item's best pairing per place among `photo_ids` (taken in this order: ties go to the earlier photo)."""
    rows = candidate_photos(photo_ids=photo_ids)
    best: dict[tuple[int, str], _Pairing] = {}
    for photo_id in photo_ids:
        row = rows.get(photo_id)
        pairing = row and pairing_score(anchor_tags, row.tags, curated_together=curated.get(row.item_id, 0))
        if not pairing:
            continue
        key = (row.item_id, BODY_PLACE[row.tags["type"]])
        if key not in best or pairing[0] > best[key].score:
            best[key] = _Pairing(
                photo_id=photo_id, item_id=row.item_id, place=key[1], score=pairing[0], reason=pairing[1], tags=row.tags
            )
    return best


def _place_best(
    anchor_tags: dict[str, str],
    levels: Callable[[], list[tuple[float, Q]]],
    place: str,
    per_place: int,
    exclude_item_id: int | None,
) -> list[_Pairing]:
    """The `per_place` best items for `place` by the rules without curated looks, ties to the older photo.

    A place with few photos (up to LOOK_SMALL_PLACE_PHOTOS, counted from the best type tags' index
    alone) has each of them scored. Otherwise score levels (`levels`, built once a look)
    are few (colour and style points add up to at most nine sums), so each level's photos are read in
    id order, LOOK_BATCH_PHOTOS at a time, until enough items are found; the database walks its status
    index in id order and stops there, instead of sorting the catalog. A level's query reads best tags
    (`Tag.is_best`), as the rules score them; an item's best photo is met at its own level first, as
    levels are read best first. At most LOOK_MAX_BATCHES batches are read, so many photos of a few
    items cost a bounded number of queries, not the catalog; if that leaves the place short, its first
    LOOK_SMALL_PLACE_PHOTOS photos are scored to fill it.
    """
    types = [type_ for type_, type_place in BODY_PLACE.items() if type_place == place]
    photos = photos_tagged_query(filters={}).filter(_has_tag("type", types)).order_by("pk")
    if exclude_item_id is not None:
        photos = photos.exclude(item_id=exclude_item_id)
    first_photos = photos.values_list("pk", flat=True)[:LOOK_SMALL_PLACE_PHOTOS]
    # Counting the place's best type tags reads only their index: one a photo, untagged ones included.
    type_tags = Tag.objects.filter(is_best=True, attribute="type", value__in=types).order_by().values("pk")
    if type_tags[: LOOK_SMALL_PLACE_PHOTOS + 1].count() <= LOOK_SMALL_PLACE_PHOTOS:
        return sorted(_place_pairings(anchor_tags, list(first_photos), place), key=_rank)[:per_place]
    found: dict[int, _Pairing] = {}
    batches = 0
    for level, condition in levels():
        after = 0
        while len(found) < per_place and batches < LOOK_MAX_BATCHES:
            batches += 1
            batch = list(photos.filter(condition, pk__gt=after).values_list("pk", flat=True)[:LOOK_BATCH_PHOTOS])
            for pairing in _pairings(anchor_tags, batch, {}).values():
                if pairing.place == place and round(pairing.score, 6) == level and pairing.item_id not in found:
                    found[pairing.item_id] = pairing
            if len(batch) < LOOK_BATCH_PHOTOS:
                break
            after = batch[-1]
        if len(found) >= per_place or batches >= LOOK_MAX_BATCHES:
            break
    if len(found) < per_place and batches >= LOOK_MAX_BATCHES:  # the cap cut the walk short
        for pairing in _place_pairings(anchor_tags, list(first_photos), place):
            found.setdefault(pairing.item_id, pairing)
    return sorted(found.values(), key=_rank)[:per_place]


def _place_pairings(anchor_tags: dict[str, str], photo_ids: list[int], place: str) -> list[_Pairing]:
    """Each item's best pairing for `place` among `photo_ids`, every photo scored one by one."""
    return [p for p in _pairings(anchor_tags, photo_ids, {}).values() if p.place == place]


def _rank(pairing: _Pairing) -> tuple[float, int]:
    return -pairing.score, pairing.photo_id


def _score_levels(anchor_tags: dict[str, str]) -> list[tuple[float, Q]]:
    """Each score the colour and style rules can give, best first, with the photos (by best tags) that get it."""
    colours = _points_conditions("colour", anchor_tags.get("colour"), _colour_points)
    styles = _points_conditions("style", anchor_tags.get("style"), lambda a, o: styles_go_together(a, o)[0])
    levels: dict[float, Q] = {}
    for colour_points, colour_condition in colours.items():
        for style_points, style_condition in styles.items():
            level, condition = round(colour_points + style_points, 6), colour_condition & style_condition
            if level in levels and levels[level] and condition:
                levels[level] |= condition
            else:  # the first condition, or an empty Q (any photo), which an OR would drop instead of widen to
                levels[level] = condition if level not in levels else Q()
    return sorted(levels.items(), key=lambda entry: -entry[0])


def _colour_points(anchor: str | None, other: str | None) -> float | None:
    together = colours_go_together(anchor, other)
    return None if together is None else together[0]


def _points_conditions(
    attribute: str, anchor: str | None, points: Callable[[str | None, str | None], float | None]
) -> dict[float, Q]:
    """The photos (by best tags) that earn each number of points for `attribute` beside `anchor`.

    Values outside the label set (a merchant's own) earn what any unlisted value earns, so that group
    is written as "a tag outside the other groups' values"; a photo without the attribute earns
    `points(anchor, None)`. Values that must not pair (clashing colours) are in no group.
    """
    if anchor is None:
        return {points(None, None) or 0.0: Q()}
    labels = set(LABEL_SETS[attribute].labels) | {anchor}
    groups: dict[float, set[str]] = {}
    for label in labels:
        label_points = points(anchor, label)
        if label_points is not None:
            groups.setdefault(label_points, set()).add(label)
    unlisted, missing = points(anchor, UNLISTED_VALUE), points(anchor, None)
    conditions: dict[float, Q] = {}
    for group_points in set(groups) | {unlisted, missing} - {None}:
        if group_points == unlisted:
            condition = _has_tag(attribute, sorted(labels - groups.get(group_points, set())), outside=True)
        else:
            condition = _has_tag(attribute, sorted(groups.get(group_points, set())))
        if group_points == missing:
            condition |= ~Q(Exists(Tag.objects.filter(photo_id=OuterRef("pk"), attribute=attribute)))
        conditions[group_points] = condition
    return conditions


def _has_tag(attribute: str, values: list[str], *, outside: bool = False) -> Q:
    """Photos whose best tag of `attribute` is among `values` (or, `outside`, not among them)."""
    tags = Tag.objects.filter(photo_id=OuterRef("pk"), attribute=attribute, is_best=True)
    return Q(Exists(tags.exclude(value__in=values) if outside else tags.filter(value__in=values)))


def looks_shared_counts(*, item: Item) -> dict[int, int]:
    """For each other item, how many curated looks it shares with `item`."""
    rows = (
        Item.objects.filter(looks__items=item)
        .exclude(pk=item.pk)
        .values("pk")
        .annotate(shared=Count("looks", distinct=True))
    )
    return {row["pk"]: row["shared"] for row in rows}


def item_tags(*, item: Item) -> dict[str, str]:
    """The tags of an item's first tagged photo (hand-set tags win)."""
    photo = item.photos.filter(status=Photo.Status.TAGGED).prefetch_related("tags").first()
    if photo is None:
        return {}
    return {attribute: tag.value for attribute, tag in photo_tags_best(photo=photo).items()}


