"""Search the catalog by words ("red striped shirt") without a photo.

Words that name a tag value (or a common synonym) become tag filters; the remaining words must occur
in the item's name, brand or description.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from functools import reduce
from operator import and_, or_

from django.db.models import F, Max, Min, Q, QuerySet

from catalog.models import Item, Photo
from catalog.selectors import (
    best_tags_valued,
    candidate_photos,
    photos_best_tags_scored,
    photos_for_results,
    photos_tagged_query,
)
from catalog.services.search import MAX_RESULTS, SearchHit
from recognition.labels import LABEL_SETS

# How far into the matches a search may ask: past this, it is a crawler walking the catalog, not a shopper.
MAX_OFFSET = 10_000
# A one-tag search reads best tags in score order, this many rows first, and gives up for the
# database's ranking when ties at the page's edge hold more than WALK_MAX_EXTRA_ITEMS further items.
WALK_CHUNK_ROWS = 200
WALK_MAX_EXTRA_ITEMS = 2000

# A query of more terms gets no per-term suggestions when it matches nothing: each term costs a search
# (a 99-word query took 3.4 s at 20,000 items, against 0.13 s for the search itself).
FEWER_WORDS_MAX_TERMS = 5

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
    "long-sleeve": ("type", "longsleeve"), "long sleeve": ("type", "longsleeve"), "t shirt": ("type", "t-shirt"),
    "polka dot": ("pattern", "dotted"),
}
# Words that carry no meaning of their own in a shopper's query ("a dress in red with stripes"); as
# free words they would have to occur in an item's name or description, and nothing would match.
FILLER_WORDS = frozenset(
    "a an the in with and or of for from on to my me i im i'm want need looking some any like similar "
    "show find please".split()
)


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
    for token in re.findall(r"[\w-]+", _phrases_joined(query.lower(), vocabulary)):
        match = _vocabulary_match(token.replace("_", " "), vocabulary)
        if match:
            filters[match[0]] = match[1]
        elif token not in FILLER_WORDS:
            words.append(token)
    return filters, words


def _phrases_joined(query: str, vocabulary: dict[str, tuple[str, str]]) -> str:
    """Join the vocabulary's phrases in `query` into single tokens ("t shirts" -> "t_shirts")."""
    for phrase in sorted((key for key in vocabulary if " " in key), key=len, reverse=True):
        query = re.sub(rf"\b{re.escape(phrase)}(?=(e?s)?\b)", phrase.replace(" ", "_"), query)
    return query


def _vocabulary_match(token: str, vocabulary: dict[str, tuple[str, str]]) -> tuple[str, str] | None:
    """The tag a word names, in the singular or plural ("dresses", "shirts")."""
    for stem in (token, token[:-1] if token.endswith("s") else "", token[:-2] if token.endswith("es") else ""):
        if stem and stem in vocabulary:
            return vocabulary[stem]
    return None


@dataclass(frozen=True)
class TextSearchPage:
    """One page of a text search, and whether a further page has more."""

    understood: dict[str, str]  # the query's words read as tag filters, so a page can show them
    hits: list[SearchHit]
    more: bool  # whether items beyond this page match too


def search_by_text(*, query: str, limit: int = 12, offset: int = 0) -> TextSearchPage:
    """Items whose tags match the query's tag words and whose text contains its other words.

    Items are ranked by the confidence of their matching tags, then by name; `offset` skips that many.
    Both conditions are applied in the database, so every matching item of the catalog can be found,
    whatever its name.
    """
    filters, words = query_parse(query)
    limit = min(limit, MAX_RESULTS)
    if not filters and not words:
        return TextSearchPage(filters, [], more=False)
    photos = photos_tagged_query(filters={})  # the filters are matched by `_best_photo_per_item`
    if words:
        fields = ("item__name", "item__brand", "item__description")
        text = (reduce(or_, (Q(**{f"{field}__icontains": w}) for field in fields)) for w in words)
        photos = photos.filter(reduce(and_, text))
    page = None
    if len(filters) == 1 and not words:  # "casual", "dresses": often a large share of the catalog
        page = _best_photo_per_item_by_one_tag(*next(iter(filters.items())), start=offset, stop=offset + limit + 1)
    if page is None:
        page = _best_photo_per_item(photos=photos, filters=filters, start=offset, stop=offset + limit + 1)
    # Past MAX_OFFSET nothing more is served, so nothing more is promised.
    more, page = len(page) > limit and offset + limit <= MAX_OFFSET, page[:limit]
    rows = candidate_photos(photo_ids=[photo_id for photo_id, _ in page])
    shown = photos_for_results(photo_ids=list(rows))
    understood = [f"{attr}: {LABEL_SETS[attr].display(value).lower()}" for attr, value in filters.items()]
    understood += [f'"{w}"' for w in words]
    hits = [
        SearchHit(
            item=shown[photo_id].item,
            photo=shown[photo_id],
            score=score,
            visual=0.0,
            tags=rows[photo_id].tags,
            tag_scores=rows[photo_id].tag_scores,
            why="matches " + " · ".join(understood),
        )
        for photo_id, score in page
        if photo_id in rows and photo_id in shown  # deleted between the queries
    ]
    return TextSearchPage(filters, hits, more=more)


def text_search_fewer_words(query: str) -> list[str]:
    """For a query of two or more terms that matches nothing: each of its terms that matches on its own.

    Every term must match ("red striped shirt" finds no red shirt with other stripes); a shopper shown
    only "no item matches" did not know which word to drop. One small search a term.
    """
    filters, words = query_parse(query)
    terms = [LABEL_SETS[attribute].display(value).lower() for attribute, value in filters.items()]
    terms += list(dict.fromkeys(words))  # each word once: "e e e ... zzqx" cost a search per repetition
    if not 2 <= len(terms) <= FEWER_WORDS_MAX_TERMS:
        return []
    return [term for term in terms if search_by_text(query=term, limit=1).hits]


def _best_photo_per_item(
    *, photos: QuerySet[Photo], filters: dict[str, str], start: int, stop: int
) -> list[tuple[int, float]]:
    """Items `start` to `stop` (in ranking order) with their best photos as (photo id, score): highest
    score, then item name and id.

    An item's photo is its best-scoring match, the oldest on a tie. The database groups, orders and
    cuts the items (every match of the catalog, 20k at 100k photos for a common style); only the
    page's items have their photos read back.
    """
    if not filters:
        rows = (
            photos.order_by()
            .values("item_id")
            .annotate(photo_id=Min("pk"), name=F("item__name"))
            .order_by("name", "item_id")[start:stop]
        )
        return [(row["photo_id"], 0.0) for row in rows]
    matches = photos_best_tags_scored(photos=photos, filters=filters).order_by()
    items = list(
        matches.values("item_id")
        .annotate(score=Max("match_score"), name=F("item__name"))
        .order_by("-score", "name", "item_id")
        .values_list("item_id", "score")[start:stop]
    )
    best: dict[int, tuple[float, int]] = {}
    for photo_id, item_id, score in matches.filter(item_id__in=[item_id for item_id, _ in items]).values_list(
        "pk", "item_id", "match_score"
    ):
        if item_id not in best or (-score, photo_id) < (-best[item_id][0], best[item_id][1]):
            best[item_id] = (score, photo_id)
    return [(best[item_id][1], best[item_id][0]) for item_id, _ in items if item_id in best]


def _best_photo_per_item_by_one_tag(
    attribute: str, value: str, *, start: int, stop: int
) -> list[tuple[int, float]] | None:
    """`_best_photo_per_item` for one tag filter and no words, reading best tags in score order until
    the page is certain; None when ties at the page's edge would hold more than WALK_MAX_EXTRA_ITEMS
    further items (the caller then asks the database to rank every match).

    Walked best first (the best tags' score index, then the older photo), an item's first row is its
    best photo, so `stop` items are found in about `stop` rows, not all of a common style's 20k
    photos (200k at a million) grouped and sorted. Rows past the `stop`-th item are read while their
    score equals its score: an item among them may come first by name.
    """
    tags = best_tags_valued(attribute=attribute, value=value).filter(
        photo__status=Photo.Status.TAGGED, photo__embedding__isnull=False
    ).order_by("-score", "photo_id")
    found: dict[int, tuple[float, int]] = {}  # item id -> (score, photo id), in walking order
    edge: float | None = None
    after: tuple[float, int] | None = None
    size = WALK_CHUNK_ROWS
    while True:
        # Each chunk starts after the last row read, but the database still steps over the rows before
        # it in the index: chunks double, so a deep page reads about twice its rows, not their square.
        chunk = tags if after is None else tags.filter(Q(score__lt=after[0]) | Q(score=after[0], photo_id__gt=after[1]))
        rows = list(chunk.values_list("photo_id", "photo__item_id", "score")[:size])
        for photo_id, item_id, score in rows:
            if edge is not None and score < edge:
                return _ranked_by_name(found, start=start, stop=stop)
            if item_id not in found:
                found[item_id] = (score, photo_id)
                if len(found) == stop:
                    edge = score
                elif len(found) > stop + WALK_MAX_EXTRA_ITEMS:
                    return None
        if len(rows) < size:
            return _ranked_by_name(found, start=start, stop=stop)
        after, size = (rows[-1][2], rows[-1][0]), size * 2


def _ranked_by_name(found: dict[int, tuple[float, int]], *, start: int, stop: int) -> list[tuple[int, float]]:
    """Items `start` to `stop` of `found` by score, then name (in the database's collation) and id."""
    names = Item.objects.filter(pk__in=list(found)).order_by("name", "pk").values_list("pk", flat=True)
    by_name = {item_id: rank for rank, item_id in enumerate(names)}
    ranked = sorted((item_id for item_id in found if item_id in by_name), key=lambda i: (-found[i][0], by_name[i]))
    return [(found[item_id][1], found[item_id][0]) for item_id in ranked[start:stop]]
