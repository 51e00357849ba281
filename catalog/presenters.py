"""Shape search results for JSON and templates: one place that decides what a result shows."""

from __future__ import annotations

from catalog.models import Item
from catalog.services.search import SearchHit
from recognition.labels import LABEL_SETS
from recognition.recognizers import Prediction


def item_fields(item: Item) -> dict:
    """What every item shows, wherever it appears."""
    return {
        "id": item.pk,
        "name": item.name,
        "brand": item.brand,
        "price": str(item.price) if item.price is not None else None,
        "currency": item.currency,
        "shop_url": item.shop_url,
    }


def item_as_dict(item: Item, *, tags: dict[str, str]) -> dict:
    """An item page's data: its fields, description, tags and every photo."""
    return item_fields(item) | {
        "description": item.description,
        "tags": tags,
        "photo_urls": [photo.image.url for photo in item.photos.all()],
    }


def hit_as_dict(hit: SearchHit) -> dict:
    return item_fields(hit.item) | {
        "photo_url": hit.photo.image.url,
        "score": round(hit.score, 4),
        "visual": round(hit.visual, 4),
        "why": hit.why,
        "tags": hit.tags,
    }


def look_as_dict(groups) -> list[dict]:
    """Complete-the-look suggestions grouped by body place, for JSON and templates."""
    return [
        {
            "place": place,
            "items": [
                item_fields(s.item)
                | {
                    "photo_url": s.photo.image.url,
                    "score": round(s.score, 4),
                    "reason": s.reason,
                    "tags": s.tags,
                }
                for s in suggestions
            ],
        }
        for place, suggestions in groups.items()
    ]


def refine_choices(current: dict[str, str]) -> list[dict]:
    """Each attribute's labels for the "same, but ..." form, with the current choice marked."""
    return [
        {
            "attribute": attribute,
            "options": [{"value": label, "label": label_set.display(label)} for label in label_set.labels],
            "current": current.get(attribute, ""),
        }
        for attribute, label_set in LABEL_SETS.items()
    ]


def predictions_shown(predictions: dict[str, list[Prediction]], per_attribute: int = 3) -> list[dict]:
    """For display: each attribute's top candidates at or above its show threshold, with display names.

    When none reaches it, the best guess alone is shown, with its low score beside it: the shopper
    sees how unsure it is rather than an attribute left out.
    """
    shown = []
    for attribute, candidates in predictions.items():
        label_set = LABEL_SETS.get(attribute)
        minimum = label_set.show_min_score if label_set else 0.0
        top = [c for c in candidates[:per_attribute] if c.score >= minimum] or candidates[:1]
        shown.append(
            {
                "attribute": attribute,
                "candidates": [
                    {"tag": c.tag, "label": label_set.display(c.tag) if label_set else c.tag, "score": c.score}
                    for c in top
                ],
            }
        )
    return shown
