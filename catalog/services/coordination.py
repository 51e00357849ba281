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

from dataclasses import dataclass

from django.db.models import Count

from catalog.models import Item, Photo
from catalog.selectors import photo_tags_best, photos_tagged_with

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
LOOK_SCAN_MAX_PHOTOS = 5000


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


def look_suggest(
    *, anchor_tags: dict[str, str], anchor_item: Item | None = None, per_place: int = ITEMS_PER_PLACE
) -> dict[str, list[LookSuggestion]]:
    """The best items for each complementary place, keyed by place in the rule book's order."""
    anchor_place = BODY_PLACE.get(anchor_tags.get("type", ""))
    if anchor_place is None:
        return {}
    curated = looks_shared_counts(item=anchor_item) if anchor_item else {}
    best: dict[int, LookSuggestion] = {}
    for photo in list(photos_tagged_with(filters={}).values())[:LOOK_SCAN_MAX_PHOTOS]:
        if anchor_item is not None and photo.item_id == anchor_item.pk:
            continue
        tags = {attribute: tag.value for attribute, tag in photo_tags_best(photo=photo).items()}
        pairing = pairing_score(anchor_tags, tags, curated_together=curated.get(photo.item_id, 0))
        if pairing is None or (photo.item_id in best and best[photo.item_id].score >= pairing[0]):
            continue
        best[photo.item_id] = LookSuggestion(
            item=photo.item, photo=photo, place=BODY_PLACE[tags["type"]], score=pairing[0], reason=pairing[1], tags=tags
        )
    by_place: dict[str, list[LookSuggestion]] = {place: [] for place in COMPLEMENTS[anchor_place]}
    for suggestion in sorted(best.values(), key=lambda s: (-s.score, s.item.pk)):
        if len(by_place[suggestion.place]) < per_place:
            by_place[suggestion.place].append(suggestion)
    return {place: items for place, items in by_place.items() if items}


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


