"""The shipped type recognizer and the training/evaluation pipeline, on real photos."""

from __future__ import annotations

import numpy as np

from recognition.backbone import EMBEDDING_DIM, get_backbone
from recognition.labels import TYPE
from recognition.recognizers import get_head, load_head, save_head
from recognition.services import backbone_get
from recognition.training import embed_files, evaluate_head, load_folder_dataset, train_head
from tests.conftest import demo_photos


def test_backbone_embeddings_are_unit_vectors_and_deterministic():
    backbone = get_backbone()
    photos = demo_photos(per_type=1)[:3]
    first, _ = embed_files(backbone, photos)
    second, _ = embed_files(backbone, photos)
    assert first.shape == (3, EMBEDDING_DIM)
    np.testing.assert_allclose(np.linalg.norm(first, axis=1), 1.0, atol=1e-5)
    np.testing.assert_allclose(first, second, atol=1e-5)


def test_shipped_type_recognizer_names_most_demo_photos_correctly():
    head = get_head("type")
    photos = demo_photos(per_type=3)
    embeddings, skipped = embed_files(backbone_get(), photos)  # the backbone the head was trained on
    predictions = head.predict(embeddings)
    correct = sum(p[0].tag == photo.parent.name for p, photo in zip(predictions, photos, strict=True))
    assert not skipped
    assert head.labels == TYPE.labels
    assert correct / len(photos) >= 0.8
    scores = [c.score for c in predictions[0]]
    assert scores == sorted(scores, reverse=True)
    assert abs(sum(scores) - 1.0) < 1e-4


def test_a_head_trained_on_folders_round_trips_and_reports_metrics(demo_subset, tmp_path):
    dataset = load_folder_dataset(demo_subset)
    embeddings, _ = embed_files(get_backbone(), dataset.files)
    head = train_head("mine", embeddings, dataset.targets, dataset.labels, backbone_version="test")
    results = evaluate_head(head, embeddings, dataset.targets)
    save_head(head, tmp_path / "mine", results)
    reloaded = load_head(tmp_path / "mine")
    assert reloaded.labels == dataset.labels == tuple(sorted(p.name for p in demo_subset.iterdir()))
    assert results["top1"] >= 0.9  # it has seen these very photos
    assert np.array(results["confusion"]).sum() == len(dataset.files)
    assert set(results["per_class"]) == set(dataset.labels)


def test_an_evaluation_reports_no_number_it_did_not_measure():
    # given: a head of three labels, evaluated on one hat and one pair of shoes (no dress held out),
    # which never predicts a dress
    from recognition.recognizers import Head
    from recognition.training import format_report

    head = Head("t", ("hat", "shoes", "dress"), np.eye(3, 4, dtype=np.float32) * 10, np.zeros(3, np.float32), "v")
    results = evaluate_head(head, np.eye(3, 4, dtype=np.float32)[[0, 1]], np.array([0, 1]))

    # then: the dress has no precision nor recall (not 0.0, which reads as "always wrong"), top-3 of
    # three labels is 1.0 by construction so it is not reported, and the report prints "-" for them
    assert results["per_class"]["dress"] == {"precision": None, "recall": None, "support": 0}
    assert (results["top1"], results["top2"], results["top3"]) == (1.0, 1.0, None)
    report = format_report(results)
    assert "top-3: -" in report
    assert [line.split() for line in report.splitlines() if line.startswith("dress")][0][:3] == ["dress", "-", "-"]
