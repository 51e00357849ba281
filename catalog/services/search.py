"""Similarity search: candidates from the vector index, ranked, grouped by item, explained.

Ranking lives here as plain functions so that it can be tested and evaluated without a request.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
from django.conf import settings
from numpy.typing import NDArray
from PIL import Image

from catalog.models import Item, Photo
from catalog.selectors import photo_tags_best, photos_with_items_and_tags
from recognition.labels import LABEL_SETS
from recognition.recognizers import Prediction
from recognition.services import (
    image_embed,
    image_recognize,
    index_store_get,
    recognizer_names_resolve,
    recognizers_live,
)

# Photos fetched from the index per query before grouping by item and re-ranking.
CANDIDATE_PHOTOS = 200
MAX_RESULTS = 50


@dataclass(frozen=True)
class SearchHit:
    item: Item
    photo: Photo
    score: float
    visual: float
    tags: dict[str, str]
    tag_scores: dict[str, float]
    why: str


@dataclass(frozen=True)
class SearchResult:
    predictions: dict[str, list[Prediction]]
    hits: list[SearchHit] = field(default_factory=list)


def search_by_image(*, image: Image.Image, limit: int | None = None) -> SearchResult:
    """Recognise the photo and find the most similar catalog items."""
    embedding = image_embed(image)
    predictions = (
        image_recognize(image=image, embedding=embedding, names=recognizer_names_resolve("fashion"))
        if "fashion" in recognizers_live()
        else {}
    )
    hits = search_by_embedding(embedding=embedding, predictions=predictions, limit=limit)
    return SearchResult(predictions=predictions, hits=hits)


def search_by_embedding(
    *,
    embedding: NDArray[np.float32],
    predictions: dict[str, list[Prediction]],
    limit: int | None = None,
    type_weight: float | None = None,
) -> list[SearchHit]:
    """Rank catalog items for one query embedding, best first, one hit per item.

    score = SEARCH_VISUAL_WEIGHT * cosine similarity
          + SEARCH_TYPE_WEIGHT * (the query's predicted probability of the item's type)
    so an item of the type the photo most likely shows rises above a look-alike of another type,
    in proportion to how sure the recognizer is. `type_weight=0` gives embedding-only ranking.
    """
    limit = min(limit or settings.SEARCH_RESULTS, MAX_RESULTS)
    type_weight = settings.SEARCH_TYPE_WEIGHT if type_weight is None else type_weight
    index_hits = index_store_get().load().search(embedding.reshape(1, -1), CANDIDATE_PHOTOS)[0]
    photos = photos_with_items_and_tags(photo_ids=[hit.id for hit in index_hits])
    type_probability = {p.tag: p.score for p in predictions.get("type", [])}
    best_by_item: dict[int, SearchHit] = {}
    for index_hit in index_hits:
        photo = photos.get(index_hit.id)
        if photo is None:  # deleted since the index was written
            continue
        best_tags = photo_tags_best(photo=photo)
        type_agreement = type_probability.get(best_tags["type"].value, 0.0) if "type" in best_tags else 0.0
        score = settings.SEARCH_VISUAL_WEIGHT * index_hit.score + type_weight * type_agreement
        current = best_by_item.get(photo.item_id)
        if current is not None and current.score >= score:
            continue
        tags = {attribute: tag.value for attribute, tag in best_tags.items()}
        best_by_item[photo.item_id] = SearchHit(
            item=photo.item,
            photo=photo,
            score=score,
            visual=index_hit.score,
            tags=tags,
            tag_scores={attribute: tag.score for attribute, tag in best_tags.items()},
            why=match_explain(visual=index_hit.score, query_predictions=predictions, item_tags=tags),
        )
    ranked = sorted(best_by_item.values(), key=lambda hit: (-hit.score, hit.item.pk))
    return ranked[:limit]


def match_explain(
    *, visual: float, query_predictions: dict[str, list[Prediction]], item_tags: dict[str, str]
) -> str:
    """A short "why it matched": shared top tags, then the visual similarity."""
    reasons = []
    for attribute, candidates in query_predictions.items():
        if candidates and item_tags.get(attribute) == candidates[0].tag:
            label = LABEL_SETS[attribute].display(candidates[0].tag).lower()
            reasons.append(f"same {attribute}: {label}")
    reasons.append(f"{visual:.2f} visual")
    return " · ".join(reasons)
