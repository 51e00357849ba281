"""Search the catalog by words ("red striped shirt") without a photo.

Words that name a tag value (or a common synonym) become tag filters; the remaining words must occur
in the item's name, brand or description.
"""

from __future__ import annotations

import re
from functools import reduce
from operator import and_

from django.db.models import Q

from catalog.models import Item
from catalog.selectors import photo_tags_best, photos_tagged_with
from catalog.services.search import MAX_RESULTS, SearchHit
from recognition.labels import LABEL_SETS

# Everyday words for our labels; each label's own name and display name are understood too.
SYNONYMS: dict[str, tuple[str, str]] = {
    "tee": ("type", "t-shirt"), "tshirt": ("type", "t-shirt"), "tees": ("type", "t-shirt"),
    "coat": ("type", "outwear"), "jacket": ("type", "outwear"), "outerwear": ("type", "outwear"),
    "trousers": ("type", "pants"), "jeans": ("type", "pants"), "sneakers": ("type", "shoes"),
    "shoe": ("type", "shoes"), "cap": ("type", "hat"), "blouse": ("type", "shirt"),
    "sweater": ("type", "longsleeve"), "jumper": ("type", "longsleeve"),
    "stripe": ("pattern", "striped"), "stripes": ("pattern", "striped"), "checked": ("pattern", "check"),
    "plaid": ("pattern", "check"), "dots": ("pattern", "dotted"), "polka": ("pattern", "dotted"),
    "flowers": ("pattern", "floral"), "printed": ("pattern", "print"), "graphic": ("pattern", "print"),
    "gray": ("colour", "grey"), "multicolour": ("colour", "multi"), "multicolor": ("colour", "multi"),
    "office": ("style", "business"), "sport": ("style", "sporty"), "elegant": ("style", "formal"),
}
TEXT_SCAN_MAX_ITEMS = 2000


def text_vocabulary() -> dict[str, tuple[str, str]]:
    vocabulary = dict(SYNONYMS)
    for attribute, label_set in LABEL_SETS.items():
        for label in label_set.labels:
            vocabulary[label] = (attribute, label)
            vocabulary[label_set.display(label).lower()] = (attribute, label)
    return vocabulary


def query_parse(query: str) -> tuple[dict[str, str], list[str]]:
    """Split a query into tag filters and free words; a later word for the same attribute wins."""
    vocabulary = text_vocabulary()
    filters: dict[str, str] = {}
    words: list[str] = []
    tokens = re.findall(r"[\w-]+", query.lower())
    for token in tokens:
        match = vocabulary.get(token) or (vocabulary.get(token[:-1]) if token.endswith("s") else None)
        if match:
            filters[match[0]] = match[1]
        else:
            words.append(token)
    return filters, words


def search_by_text(*, query: str, limit: int = 12) -> tuple[dict[str, str], list[SearchHit]]:
    """Items whose tags match the query's tag words and whose text contains its other words.

    Items are ranked by the confidence of their matching tags, then by name. Returns the parsed
    filters too, so a page can show what was understood.
    """
    filters, words = query_parse(query)
    limit = min(limit, MAX_RESULTS)
    if not filters and not words:
        return filters, []
    photos = photos_tagged_with(filters=filters) if filters else None
    items = Item.objects.all()
    if words:
        items = items.filter(
            reduce(and_, (Q(name__icontains=w) | Q(brand__icontains=w) | Q(description__icontains=w) for w in words))
        )
    item_ids = set(items.values_list("pk", flat=True)[:TEXT_SCAN_MAX_ITEMS])
    if photos is None:
        photos = photos_tagged_with(filters={})
    hits: dict[int, SearchHit] = {}
    for photo in photos.values():
        if photo.item_id not in item_ids:
            continue
        best = photo_tags_best(photo=photo)
        if any(attribute not in best or best[attribute].value != value for attribute, value in filters.items()):
            continue
        score = sum(best[attribute].score for attribute in filters) / max(len(filters), 1)
        if photo.item_id in hits and hits[photo.item_id].score >= score:
            continue
        understood = [f"{attribute}: {value}" for attribute, value in filters.items()] + [f'"{w}"' for w in words]
        hits[photo.item_id] = SearchHit(
            item=photo.item,
            photo=photo,
            score=score,
            visual=0.0,
            tags={attribute: tag.value for attribute, tag in best.items()},
            tag_scores={attribute: tag.score for attribute, tag in best.items()},
            why="matches " + " · ".join(understood),
        )
    ranked = sorted(hits.values(), key=lambda hit: (-hit.score, hit.item.name, hit.item.pk))
    return filters, ranked[:limit]
