"""Vectors and indexes that the index tests share."""

from __future__ import annotations

import numpy as np

from recognition.index import VectorIndex


def unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def hnsw_index(n: int = 500, seed: int = 0) -> tuple[VectorIndex, np.ndarray]:
    vectors = unit_vectors(n, seed=seed)
    index = VectorIndex.build(np.arange(n), vectors, flat_max_items=10)
    assert index.kind == "hnsw"
    return index, vectors


def found_ids(index: VectorIndex, queries: np.ndarray, k: int) -> list[list[int]]:
    return [[hit.id for hit in row] for row in index.search(queries, k)]
