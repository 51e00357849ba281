"""Hybrid ranking and its explanation, as plain functions."""

from __future__ import annotations

from catalog.services.ranking import Candidate, RankingWeights, candidates_rank, match_explain
from recognition.recognizers import Prediction

WEIGHTS = RankingWeights(visual=1.0, tags={"type": 0.3, "colour": 0.1})
COAT_PHOTO = {"type": [Prediction("outwear", 0.9), Prediction("dress", 0.1)], "colour": [Prediction("navy", 0.8)]}


def test_an_item_of_the_predicted_type_outranks_a_slightly_closer_lookalike():
    lookalike_dress = Candidate(key=1, visual=0.80, tags={"type": "dress", "colour": "navy"})
    coat = Candidate(key=2, visual=0.75, tags={"type": "outwear", "colour": "navy"})
    ranked = candidates_rank([lookalike_dress, coat], predictions=COAT_PHOTO, weights=WEIGHTS)
    assert [r.candidate.key for r in ranked] == [2, 1]
    assert abs(ranked[0].score - (0.75 + 0.3 * 0.9 + 0.1 * 0.8)) < 1e-9


def test_tag_agreement_counts_in_proportion_to_the_recognizers_confidence():
    unsure = {"type": [Prediction("outwear", 0.4), Prediction("dress", 0.35)]}
    coat = Candidate(key=1, visual=0.5, tags={"type": "outwear"})
    dress = Candidate(key=2, visual=0.5, tags={"type": "dress"})
    ranked = candidates_rank([coat, dress], predictions=unsure, weights=WEIGHTS)
    assert ranked[0].score - ranked[1].score == 0.3 * (0.4 - 0.35)


def test_embedding_only_ranking_ignores_tags_and_breaks_ties_by_key():
    a = Candidate(key=7, visual=0.6, tags={"type": "dress"})
    b = Candidate(key=3, visual=0.6, tags={"type": "outwear"})
    ranked = candidates_rank([a, b], predictions=COAT_PHOTO, weights=WEIGHTS.embedding_only())
    assert [r.candidate.key for r in ranked] == [3, 7]
    assert [r.score for r in ranked] == [0.6, 0.6]


def test_why_it_matched_names_shared_tags_and_the_visual_similarity():
    why = match_explain(visual=0.834, predictions=COAT_PHOTO, item_tags={"type": "outwear", "colour": "navy"})
    assert why == "same type: outerwear · same colour: navy · visual similarity 0.83"
    assert match_explain(visual=0.5, predictions=COAT_PHOTO, item_tags={"type": "dress"}) == "visual similarity 0.50"
