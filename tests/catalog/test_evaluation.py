"""Retrieval metrics used by evaluate_search."""

from __future__ import annotations

import pytest

from catalog.services.evaluation import retrieval_metrics


def test_retrieval_metrics_follow_their_definitions():
    perfect = [[True] * 10]
    assert retrieval_metrics(perfect) == {"precision@1": 1.0, "precision@10": 1.0, "mAP@10": 1.0}
    half = [[True, False] * 5]
    metrics = retrieval_metrics(half)
    assert metrics["precision@1"] == 1.0 and metrics["precision@10"] == 0.5
    # AP@10 = (1/1 + 2/3 + 3/5 + 4/7 + 5/9) / 10
    assert metrics["mAP@10"] == pytest.approx((1 + 2 / 3 + 3 / 5 + 4 / 7 + 5 / 9) / 10)
    assert retrieval_metrics([[False] * 10, [True] * 10])["precision@10"] == 0.5
