"""Similarity search: candidates from the vector index (or a tag filter), hybrid-ranked, one hit per item.

Ranking itself lives in `ranking.py`; this module gathers candidates from the index and the database
and shapes hits.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from catalog.models import Item, Photo
from catalog.selectors import (
    CandidatePhoto,
    candidate_photos,
    photo_ids_best_tagged,
    photo_tags_best,
    photos_for_results,
)
from catalog.services.ranking import Candidate, RankingWeights, candidates_rank, match_explain
from recognition.index import IndexHit
from recognition.recognizers import Prediction
from recognition.services import image_embed, image_recognize, index_store_get

# Photos fetched from the index per query before grouping by item and re-ranking; fetched again, up to
# the most, while they hold fewer items than the page asks for (items with many photos of one look).
CANDIDATE_PHOTOS = 200
MOST_CANDIDATE_PHOTOS = 3200
MAX_RESULTS = 50
# A refine ("same, but in red") ranks this many of the matching photos nearest the query, which the
# index finds among the matching photos only (VectorIndex.search_among).
FILTER_CANDIDATE_PHOTOS = 500


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
    embedding: NDArray[np.float32] | None = None


def search_by_image(
    *, image: Image.Image, limit: int | None = None, filters: dict[str, str] | None = None
) -> SearchResult:
    """Recognise the photo and find the most similar catalog items (optionally only those matching `filters`)."""
    embedding = image_embed(image)
    predictions = image_recognize(image=image, embedding=embedding)  # every attribute recognizer live
    hits = search_by_embedding(embedding=embedding, predictions=predictions, limit=limit, filters=filters)
    return SearchResult(predictions=predictions, hits=hits, embedding=embedding)


def search_by_embedding(
    *,
    embedding: NDArray[np.float32],
    predictions: dict[str, list[Prediction]],
    limit: int | None = None,
    filters: dict[str, str] | None = None,
    weights: RankingWeights | None = None,
    exclude_item_ids: frozenset[int] = frozenset(),
) -> list[SearchHit]:
    """Rank catalog items for one query embedding, best first, one hit per item.

    With `filters` ({"colour": "red"}), only items whose tag for each attribute is that value are
    ranked: "the same, but in red", from every matching photo of the catalog (`_filtered_candidates`),
    so a rare colour still fills the page and a new photo is found as well as an old one.
    """
    from django.conf import settings

    limit = min(limit or settings.SEARCH_RESULTS, MAX_RESULTS)
    weights = weights or RankingWeights.from_settings()
    # "Why it matched" names what the item shares with the photo, not the shopper's own filter,
    # which every result holds by construction.
    explained = {a: ranked for a, ranked in predictions.items() if a not in (filters or {})}
    if filters:
        index_hits, candidates = _filtered_candidates(
            embedding, filters, limit=limit, exclude_item_ids=exclude_item_ids
        )
        # The shopper chose these values: they are no longer in question.
        predictions = predictions | {a: [Prediction(v, 1.0)] for a, v in filters.items()}
    else:
        index_hits, candidates = _index_candidates(embedding, limit=limit, exclude_item_ids=exclude_item_ids)
    visual_by_photo = {hit.id: hit.score for hit in index_hits}

    best: dict[int, tuple[CandidatePhoto, Candidate]] = {}
    for photo_id, visual in visual_by_photo.items():
        row = candidates.get(photo_id)
        if row is None or row.item_id in exclude_item_ids:  # deleted since the index was written
            continue
        if filters and any(row.tags.get(a) != v for a, v in filters.items()):
            continue
        current = best.get(row.item_id)
        if current is None or visual > current[1].visual:
            best[row.item_id] = (row, Candidate(key=row.item_id, visual=visual, tags=row.tags))

    ranked = candidates_rank([c for _, c in best.values()], predictions=predictions, weights=weights)[:limit]
    # Only the page of results is loaded as models.
    photos = photos_for_results(photo_ids=[best[entry.candidate.key][0].photo_id for entry in ranked])
    hits = []
    for entry in ranked:
        row, candidate = best[entry.candidate.key]
        photo = photos.get(row.photo_id)
        if photo is None:  # deleted between the two queries
            continue
        hits.append(
            SearchHit(
                item=photo.item,
                photo=photo,
                score=entry.score,
                visual=candidate.visual,
                tags=candidate.tags,
                tag_scores=row.tag_scores,
                why=match_explain(visual=candidate.visual, predictions=explained, item_tags=candidate.tags),
            )
        )
    return hits


def search_similar_to_item(*, item: Item, limit: int | None = None) -> list[SearchHit]:
    """Items that look like `item` (its first tagged photo), itself excluded."""
    photo = item.photos.filter(status=Photo.Status.TAGGED, embedding__isnull=False).first()
    embedding = photo.embedding_vector() if photo is not None else None
    if photo is None or embedding is None:  # a damaged embedding: the next index sync fails its photo
        return []
    tags = photo_tags_best(photo=photo)
    predictions = {attribute: [Prediction(tag.value, tag.score)] for attribute, tag in tags.items()}
    return search_by_embedding(
        embedding=embedding,
        predictions=predictions,
        limit=limit,
        exclude_item_ids=frozenset({item.pk}),
    )


def _index_candidates(
    embedding: NDArray[np.float32], *, limit: int, exclude_item_ids: frozenset[int]
) -> tuple[list[IndexHit], dict[int, CandidatePhoto]]:
    """The index's nearest photos, enough of them to hold `limit` items when the catalog has that many."""
    index = index_store_get().load()
    return _nearest_widened(
        lambda k: index.search(embedding.reshape(1, -1), k)[0],
        first=CANDIDATE_PHOTOS, limit=limit, exclude_item_ids=exclude_item_ids,
    )


def _filtered_candidates(
    embedding: NDArray[np.float32], filters: dict[str, str], *, limit: int, exclude_item_ids: frozenset[int]
) -> tuple[list[IndexHit], dict[int, CandidatePhoto]]:
    """The photos whose best tags match `filters` nearest the query, enough of them to hold `limit`
    items when that many match (FILTER_CANDIDATE_PHOTOS first, as `_index_candidates` widens).

    The index searches among the matching photos only, however far down the whole catalog's ranking
    they sit (a rare colour still fills the page), and no embedding but the query's is read: under
    SCAN_AMONG_MATCHES_PER_ROOT times the root of its size it compares each of them, exactly, from
    its own copy of the vectors.
    Matched on each photo's best tag, as the ranking then keeps them: a photo whose red is only a weak
    second guess must not take one of the candidate places from a red one.
    """
    photo_ids = np.array(photo_ids_best_tagged(filters=filters), dtype=np.int64)
    index = index_store_get().load()
    return _nearest_widened(
        lambda k: index.search_among(embedding, k, photo_ids),
        first=FILTER_CANDIDATE_PHOTOS, limit=limit, exclude_item_ids=exclude_item_ids,
    )


def _nearest_widened(
    nearest: Callable[[int], list[IndexHit]], *, first: int, limit: int, exclude_item_ids: frozenset[int]
) -> tuple[list[IndexHit], dict[int, CandidatePhoto]]:
    """The `nearest(k)` photos with their candidate rows, `first` of them, then four times as many up to
    MOST_CANDIDATE_PHOTOS while they hold fewer than `limit` items (items with many photos of one look)."""
    k = first
    while True:
        hits = nearest(k)
        candidates = candidate_photos(photo_ids=[hit.id for hit in hits])
        items = {row.item_id for row in candidates.values()} - exclude_item_ids
        if len(items) >= limit or len(hits) < k or k >= MOST_CANDIDATE_PHOTOS:
            return hits, candidates
        k = min(k * 4, MOST_CANDIDATE_PHOTOS)
