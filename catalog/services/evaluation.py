"""Retrieval quality: each photo of a folder-per-type directory queries a catalog built from another.

Relevance is type agreement (the query's folder equals the catalog photo's folder). The catalog side
mirrors `import_catalog`: each catalog photo's folder is its hand-set type, its other attributes come
from the recognizers. Embedding-only and hybrid ranking are computed from the same candidates.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from catalog.services.ranking import Candidate, RankingWeights, candidates_rank
from catalog.services.search import CANDIDATE_PHOTOS
from recognition.errors import InvalidDataset, InvalidImage
from recognition.images import decode_image, model_draft_size
from recognition.index import VectorIndex
from recognition.recognizers import Prediction, head_features
from recognition.services import attribute_recognizers, backbone_get, head_live
from recognition.training import TRAINING_MAX_BYTES, TRAINING_MAX_PIXELS, load_folder_dataset

TOP_K = 10
EMBED_BATCH_IMAGES = 32


@dataclass(frozen=True)
class EmbeddedPhotos:
    types: list[str]
    embeddings: NDArray[np.float32]
    predictions: list[dict[str, list[Prediction]]]
    unreadable: tuple[Path, ...] = ()  # left out of the measure, and said so


def photos_embed(root: Path, *, progress: Callable[[int], None] | None = None) -> EmbeddedPhotos:
    """Embed every photo of a folder-per-type directory and run every attribute recognizer on it."""
    dataset = load_folder_dataset(root)
    backbone = backbone_get()
    heads = [head_live(name) for name in attribute_recognizers()]
    types: list[str] = []
    embeddings: list[NDArray[np.float32]] = []
    predictions: list[dict[str, list[Prediction]]] = []
    unreadable: list[Path] = []
    files = list(zip(dataset.files, dataset.targets, strict=True))
    for start in range(0, len(files), EMBED_BATCH_IMAGES):
        images, labels = [], []
        for path, target in files[start : start + EMBED_BATCH_IMAGES]:
            try:
                images.append(
                    decode_image(
                        path.read_bytes(),
                        max_bytes=TRAINING_MAX_BYTES,
                        max_pixels=TRAINING_MAX_PIXELS,
                        draft_size=model_draft_size(backbone.input_size),
                    )
                )
                labels.append(dataset.labels[target])
            except (InvalidImage, OSError):
                unreadable.append(path)
        if progress:
            progress(len(files[start : start + EMBED_BATCH_IMAGES]))
        if not images:
            continue
        batch = backbone.embed(images)
        per_head = {head.name: head.predict(head_features(head.features, batch, images)) for head in heads}
        embeddings.append(batch)
        types += labels
        predictions += [{name: rows[i] for name, rows in per_head.items()} for i in range(len(images))]
    if not embeddings:
        raise InvalidDataset(f"No photo under {root} could be read.")
    return EmbeddedPhotos(types, np.concatenate(embeddings), predictions, tuple(unreadable))


def retrieval_evaluate(queries: EmbeddedPhotos, catalog: EmbeddedPhotos, *, weights: RankingWeights) -> dict:
    """Precision@1, precision@10 and mAP@10 of type agreement, embedding-only and hybrid, side by side."""
    index = VectorIndex.build(np.arange(len(catalog.types)), catalog.embeddings, flat_max_items=10**9)
    catalog_tags = [
        {"type": catalog.types[i]}
        | {attribute: ranked[0].tag for attribute, ranked in catalog.predictions[i].items() if attribute != "type"}
        for i in range(len(catalog.types))
    ]
    rankings = {"embedding-only": weights.embedding_only(), "hybrid": weights}
    relevance: dict[str, list[list[bool]]] = {name: [] for name in rankings}
    for query_index, hits in enumerate(index.search(queries.embeddings, CANDIDATE_PHOTOS)):
        candidates = [Candidate(key=hit.id, visual=hit.score, tags=catalog_tags[hit.id]) for hit in hits]
        for name, ranking_weights in rankings.items():
            ranked = candidates_rank(
                candidates, predictions=queries.predictions[query_index], weights=ranking_weights
            )[:TOP_K]
            relevance[name].append([catalog.types[r.candidate.key] == queries.types[query_index] for r in ranked])
    return {
        "queries": len(queries.types),
        "catalog": len(catalog.types),
        "weights": {"visual": weights.visual, **weights.tags},
        **{name: retrieval_metrics(rows) for name, rows in relevance.items()},
    }


def retrieval_metrics(relevance: list[list[bool]]) -> dict[str, float]:
    """P@1, P@10 and mAP@10: average precision over the first 10, divided by 10.

    The usual divisor is min(10, relevant items in the catalog); every type of the evaluation
    catalog has more than 10 photos, so the two agree there. With fewer, this one is lower.
    """
    matrix = np.array([row + [False] * (TOP_K - len(row)) for row in relevance], dtype=np.float64)
    cumulative = np.cumsum(matrix, axis=1)
    precision_at_k = cumulative / np.arange(1, TOP_K + 1)
    average_precision = (precision_at_k * matrix).sum(axis=1) / TOP_K
    return {
        "precision@1": float(matrix[:, 0].mean()),
        "precision@10": float(matrix.mean()),
        "mAP@10": float(average_precision.mean()),
    }


def format_retrieval_report(results: dict) -> str:
    lines = [
        f"queries: {results['queries']}   catalog: {results['catalog']}   weights: {results['weights']}",
        f"{'ranking':<16}{'P@1':>8}{'P@10':>8}{'mAP@10':>9}",
    ]
    for name in ("embedding-only", "hybrid"):
        row = results[name]
        lines.append(f"{name:<16}{row['precision@1']:>8.3f}{row['precision@10']:>8.3f}{row['mAP@10']:>9.3f}")
    return "\n".join(lines)
