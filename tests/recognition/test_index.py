"""The vector index: exact and approximate search, upserts, removals, atomic publishing, reloads."""

from __future__ import annotations

import numpy as np
import pytest

from recognition.index import IndexStore, VectorIndex


def unit_vectors(n: int, dim: int = 32, seed: int = 0) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, dim)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def test_flat_index_finds_the_exact_nearest_neighbours():
    vectors = unit_vectors(200)
    index = VectorIndex.build(np.arange(200), vectors, flat_max_items=1000)
    hits = index.search(vectors[:5], k=10)
    expected = np.argsort(-(vectors[:5] @ vectors.T), axis=1)[:, :10]
    assert index.kind == "flat"
    assert [[hit.id for hit in row] for row in hits] == expected.tolist()


def test_past_the_flat_limit_an_hnsw_index_keeps_recall_at_10_above_095():
    vectors = unit_vectors(5000, dim=64, seed=1)
    queries = unit_vectors(50, dim=64, seed=2)
    exact = VectorIndex.build(np.arange(5000), vectors, flat_max_items=10_000)
    approximate = VectorIndex.build(np.arange(5000), vectors, flat_max_items=1000)
    assert approximate.kind == "hnsw"
    truth = exact.search(queries, 10)
    found = approximate.search(queries, 10)
    recall = np.mean([len({h.id for h in t} & {h.id for h in f}) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.95


@pytest.mark.parametrize("flat_max_items", [1000, 10])
def test_adding_an_existing_id_replaces_its_vector_and_removal_drops_it(flat_max_items):
    vectors = unit_vectors(50)
    index = VectorIndex.build(np.arange(50), vectors, flat_max_items=flat_max_items)
    index.add(np.array([3]), vectors[7:8])
    assert len(index) == 50
    assert {hit.id for hit in index.search(vectors[7:8], 2)[0]} == {3, 7}
    assert index.remove(np.array([3, 999])) == 1
    assert 3 not in {hit.id for hit in index.search(vectors[7:8], 50)[0]}


def test_a_published_index_is_seen_by_another_store_on_the_same_directory(tmp_path):
    writer, reader = IndexStore(tmp_path, 32), IndexStore(tmp_path, 32)
    assert len(reader.load()) == 0
    with writer.editing() as index:
        index.add(np.arange(5), unit_vectors(5))
    assert len(reader.load()) == 5
    assert reader.load() is reader.load()  # cached until a new version is published


def test_a_failed_edit_publishes_nothing_and_leaves_the_previous_index_live(tmp_path):
    store = IndexStore(tmp_path, 32)
    with store.editing() as index:
        index.add(np.arange(5), unit_vectors(5))
    version = store.current_version()
    with pytest.raises(RuntimeError), store.editing() as index:
        index.add(np.arange(5, 10), unit_vectors(5, seed=3))
        raise RuntimeError("crash while writing")
    assert store.current_version() == version
    assert len(IndexStore(tmp_path, 32).load()) == 5
