"""Hybrid ranking: visual similarity plus agreement of predicted tags, and the "why it matched" line.

Plain functions over plain values, so that the live search and `evaluate_search` rank the same way.
"""

from __future__ import annotations

from dataclasses import dataclass

from django.conf import settings

from recognition.labels import LABEL_SETS
from recognition.recognizers import Prediction


@dataclass(frozen=True)
class RankingWeights:
    """score = visual * cosine + sum over attributes of tags[a] * P(query's a == item's a)."""

    visual: float
    tags: dict[str, float]

    @classmethod
    def from_settings(cls) -> RankingWeights:
        return cls(visual=settings.SEARCH_VISUAL_WEIGHT, tags=dict(settings.SEARCH_TAG_WEIGHTS))

    def embedding_only(self) -> RankingWeights:
        return RankingWeights(visual=self.visual, tags={})


@dataclass(frozen=True)
class Candidate:
    """A catalog item as ranking sees it: its best visual similarity and its tag per attribute."""

    key: int
    visual: float
    tags: dict[str, str]


@dataclass(frozen=True)
class Ranked:
    candidate: Candidate
    score: float
    agreements: dict[str, float]  # attribute -> the query's probability of the item's value


def candidates_rank(
    candidates: list[Candidate],
    *,
    predictions: dict[str, list[Prediction]],
    weights: RankingWeights,
) -> list[Ranked]:
    """Score and sort candidates, best first; ties broken by key so pages are stable.

    Each attribute counts in proportion to the recognizer's confidence in the item's value: an
    item of the type the photo shows at 0.9 gains 0.9 x the type weight, one of a type at 0.05
    gains almost nothing.
    """
    probabilities = {attribute: {p.tag: p.score for p in ranked} for attribute, ranked in predictions.items()}
    ranked_list = []
    for candidate in candidates:
        agreements = {
            attribute: probabilities[attribute].get(candidate.tags[attribute], 0.0)
            for attribute in weights.tags
            if attribute in probabilities and attribute in candidate.tags
        }
        score = weights.visual * candidate.visual + sum(
            weights.tags[attribute] * agreement for attribute, agreement in agreements.items()
        )
        ranked_list.append(Ranked(candidate=candidate, score=score, agreements=agreements))
    ranked_list.sort(key=lambda r: (-r.score, r.candidate.key))
    return ranked_list


def match_explain(*, visual: float, predictions: dict[str, list[Prediction]], item_tags: dict[str, str]) -> str:
    """A short "why it matched": the attributes on which the item agrees with the photo's top tag."""
    reasons = []
    for attribute, candidates in predictions.items():
        if candidates and item_tags.get(attribute) == candidates[0].tag:
            label_set = LABEL_SETS.get(attribute)
            label = label_set.display(candidates[0].tag).lower() if label_set else candidates[0].tag
            reasons.append(f"same {attribute}: {label}")
    reasons.append(f"visual similarity {visual:.2f}")
    return " · ".join(reasons)
