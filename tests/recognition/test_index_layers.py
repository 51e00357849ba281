"""Publishing over an HNSW base: edits go to a small delta file, the base file stays, a merge folds them in."""

from __future__ import annotations

import numpy as np
import pytest

from recognition import index_store as store_module
from recognition.index import IndexReadOnly, IndexUnreadable, VectorIndex
from recognition.index_layers import MERGE_DUE_LEAST
from recognition.index_store import DELTA_SEPARATOR, IndexStore
from tests.recognition.index_helpers import found_ids, hnsw_index, unit_vectors


@pytest.fixture(params=[True, False], ids=["mapped", "read-privately"])
def published(tmp_path, request):
    """A directory with an HNSW index of ids 0..499 published; returns its store (which maps its files,
    or reads them privately as with INDEX_MEMORY_MAP=0) and the vectors."""
    index, vectors = hnsw_index()
    store = IndexStore(tmp_path, 32, mapped=request.param)
    store.replace(index)
    return store, vectors


def base_files(store: IndexStore) -> list[str]:
    return sorted(path.name for path in store.directory.glob("index-*.faiss"))


def test_an_edit_of_an_hnsw_index_publishes_a_delta_and_leaves_the_base_file_as_it_was(published):
    store, vectors = published
    base_version = store.current_version()
    base_file = store.directory / f"index-{base_version}.faiss"
    base_stat = base_file.stat()

    # when photos are added, one replaced and one removed
    added = unit_vectors(5, seed=7)
    replacement = unit_vectors(1, seed=8)
    with store.editing() as index:
        index.add(np.arange(500, 505), added)
        index.add(np.array([3]), replacement)
        index.remove(np.array([4]))

    # then the new version is the same base with a delta over it, and the base file was not rewritten
    version = store.current_version()
    assert version.startswith(base_version + DELTA_SEPARATOR)
    assert base_files(store) == [base_file.name]
    assert (base_file.stat().st_ino, base_file.stat().st_mtime_ns) == (base_stat.st_ino, base_stat.st_mtime_ns)
    delta_file = next(store.directory.glob("delta-*.faiss"))
    assert delta_file.stat().st_size < base_stat.st_size / 20

    # and a process starting now finds every edit
    loaded = IndexStore(store.directory, 32, mapped=store.mapped).load()
    assert sorted(loaded.ids().tolist()) == [*range(4), *range(5, 505)]
    assert found_ids(loaded, added, 1) == [[500], [501], [502], [503], [504]]
    assert found_ids(loaded, replacement, 1) == [[3]]
    assert 3 not in found_ids(loaded, vectors[3:4], 3)[0]  # its old vector is gone
    assert 4 not in found_ids(loaded, vectors[4:5], 10)[0]
    assert len(loaded) == 504


def test_searches_over_base_and_delta_rank_as_one_index(published):
    store, vectors = published
    added = unit_vectors(50, seed=9)
    with store.editing() as index:
        index.add(np.arange(500, 550), added)
        index.remove(np.arange(0, 50))
    loaded = store.load()
    queries = unit_vectors(20, seed=10)

    # the live vectors, searched exactly
    live_ids = np.arange(50, 550)
    live_vectors = np.vstack([vectors[50:], added])
    exact = VectorIndex.build(live_ids, live_vectors, flat_max_items=10_000)
    truth = found_ids(exact, queries, 10)
    found = found_ids(loaded, queries, 10)
    recall = np.mean([len(set(t) & set(f)) / 10 for t, f in zip(truth, found, strict=True)])
    assert recall >= 0.95
    assert all(row == sorted(row, key=row.index) for row in found)
    scores = [[hit.score for hit in row] for row in loaded.search(queries, 10)]
    assert all(row == sorted(row, reverse=True) for row in scores)

    # and a search among some ids draws them from both layers, and from them only
    among = np.array([60, 70, 510, 520, 10])
    hits = loaded.search_among(queries[0], 10, among)
    assert {hit.id for hit in hits} == {60, 70, 510, 520}


def test_a_process_holding_the_base_reads_only_the_new_delta(published, monkeypatch):
    store, _ = published
    searching = IndexStore(store.directory, 32, mapped=store.mapped)
    searching.load()
    reads: list[str] = []
    real_read = VectorIndex.read.__func__

    def read_noted(cls, path, *args, **options):  # the real read, noted
        reads.append(path.name)
        return real_read(cls, path, *args, **options)

    monkeypatch.setattr(VectorIndex, "read", classmethod(read_noted))

    # when a writer publishes a delta
    with store.editing() as index:
        index.add(np.array([900]), unit_vectors(1, seed=11))
    reads.clear()

    # then the searching process loads the new version without reading the base file again
    assert 900 in searching.load().ids()
    assert not [name for name in reads if name.startswith("index-")]


def test_a_loaded_index_refuses_edits(published):
    store, vectors = published
    loaded = store.load()
    with pytest.raises(IndexReadOnly):
        loaded.add(np.array([900]), vectors[:1])
    with pytest.raises(IndexReadOnly):
        loaded.remove(np.array([1]))
    assert len(store.load()) == 500


def test_a_delta_past_its_due_size_is_merged_into_a_new_base(published):
    store, vectors = published
    many = MERGE_DUE_LEAST + 1
    with store.editing() as index:
        index.add(np.arange(1000, 1000 + many), unit_vectors(many, seed=12))
        index.remove(np.array([0, 1]))
        assert index.merge_due
    assert DELTA_SEPARATOR in store.current_version()

    # when the owner compacts it (the compact_index task), the delta is folded into a new base
    with store.editing() as index:
        index.compact(flat_max_items=10)
    version = store.current_version()
    assert DELTA_SEPARATOR not in version
    assert f"index-{version}.faiss" in base_files(store)  # beside the previous version's, kept for readers

    loaded = IndexStore(store.directory, 32, mapped=store.mapped).load()
    assert loaded.kind == "hnsw" and not loaded.merge_due
    assert len(loaded) == 500 - 2 + many
    assert found_ids(loaded, vectors[5:8], 1) == [[5], [6], [7]]
    assert 0 not in found_ids(loaded, vectors[:1], 5)[0]


def test_a_small_flat_index_is_still_published_whole(tmp_path):
    store = IndexStore(tmp_path, 32)
    with store.editing() as index:
        index.add(np.arange(20), unit_vectors(20), flat_max_items=100)
    with store.editing() as index:
        index.add(np.array([20]), unit_vectors(1, seed=3), flat_max_items=100)
    assert DELTA_SEPARATOR not in store.current_version()
    assert store.load().kind == "flat" and len(store.load()) == 21


def test_a_delta_whose_tombstones_lie_beyond_its_base_is_refused(published):
    store, vectors = published
    with store.editing() as index:
        index.remove(np.array([1]))
    delta_file = next(store.directory.glob("delta-*.faiss"))
    # a delta written over a bigger base: its tombstone names slot 600 of this base's 500
    delta = VectorIndex(32)
    delta.write(delta_file, tombstones=np.array([600]))

    with pytest.raises(IndexUnreadable, match="cannot be read"):
        IndexStore(store.directory, 32, mapped=store.mapped).load()


def test_the_previous_version_stays_on_disk_for_a_reader_still_loading_it(published):
    store, _ = published
    for seed in range(3):
        with store.editing() as index:
            index.add(np.array([900 + seed]), unit_vectors(1, seed=20 + seed))
    # the live delta and the one before it, over their one base
    assert len(list(store.directory.glob("delta-*.faiss"))) == 2
    assert len(base_files(store)) == 1
    assert store_module.CURRENT_FILE in {path.name for path in store.directory.iterdir()}


def test_an_edit_that_turns_the_index_hnsw_publishes_every_later_add_too(tmp_path):
    # given a flat index of 100 vectors and a flat limit of 150
    store = IndexStore(tmp_path, 32)
    vectors = unit_vectors(301, seed=30)
    with store.editing() as index:
        index.add(np.arange(100), vectors[:100], flat_max_items=150)

    # when one edit (a sync's batches) crosses the limit, then goes on adding and replacing
    with store.editing() as index:
        index.add(np.arange(100, 200), vectors[100:200], flat_max_items=150)
        assert index.kind == "hnsw"
        index.add(np.arange(200, 300), vectors[200:300], flat_max_items=150)
        index.add(np.array([5]), vectors[300:301], flat_max_items=150)

    # then the new base holds all of it
    loaded = IndexStore(tmp_path, 32).load()
    assert sorted(loaded.ids().tolist()) == list(range(300))
    assert found_ids(loaded, vectors[[250, 300]], 1) == [[250], [5]]


def test_adds_after_a_merge_in_the_same_edit_are_published(published):
    store, vectors = published
    with store.editing() as index:
        index.add(np.array([600]), unit_vectors(1, seed=31))
    with store.editing() as index:
        index.compact(flat_max_items=10)
        index.add(np.array([601]), unit_vectors(1, seed=32))
    loaded = IndexStore(store.directory, 32, mapped=store.mapped).load()
    assert {600, 601} <= set(loaded.ids().tolist()) and len(loaded) == 502


def test_a_merge_of_removals_alone_stays_published_through_later_edits_in_the_same_edit(published):
    store, _ = published
    with store.editing() as index:
        index.remove(np.array([1, 2]))
    with store.editing() as index:
        index.remove(np.array([3]))
        index.merge()
        assert index.remove(np.array([12345])) == 0  # absent
        index.remove(np.array([4]))
    assert DELTA_SEPARATOR not in store.current_version()
    loaded = IndexStore(store.directory, 32, mapped=store.mapped).load()
    assert not {1, 2, 3, 4} & set(loaded.ids().tolist()) and len(loaded) == 496


def test_a_reader_whose_delta_is_replaced_while_it_reads_the_base_reads_the_base_once(published, monkeypatch):
    store, _ = published
    with store.editing() as index:
        index.add(np.array([600]), unit_vectors(1, seed=33))
    real_read = VectorIndex.read.__func__
    base_reads: list[str] = []
    new_ids = iter(range(601, 700))

    writing = []

    def read_while_two_deltas_are_published(cls, path, *args, **options):
        base = real_read(cls, path, *args, **options)
        if writing or not path.name.startswith("index-"):
            return base  # the writer's own reads
        base_reads.append(path.name)
        if len(base_reads) == 1:
            writing.append(True)
            for _ in range(2):  # the delta CURRENT named is pruned before the reader gets to it
                with store.editing() as index:
                    index.add(np.array([next(new_ids)]), unit_vectors(1, seed=34))
            writing.clear()
        return base

    reader = IndexStore(store.directory, 32, mapped=store.mapped)
    monkeypatch.setattr(VectorIndex, "read", classmethod(read_while_two_deltas_are_published))
    loaded = reader.load()
    assert {600, 601, 602} <= set(loaded.ids().tolist())
    assert len(base_reads) == 1
