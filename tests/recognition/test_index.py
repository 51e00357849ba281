"""The vector index: exact and approximate search, upserts, lazy removals, growth, atomic publishing, syncs."""

from __future__ import annotations

import threading
import time

import faiss
import numpy as np
import pytest

from recognition.index import UNKNOWN_STAMP, VectorIndex
from recognition.index_file import TRAILER_V3_MAGIC
from recognition.index_store import SYNC_REQUEST_FILE, SYNC_RUNNING_FILE, IndexStore
from tests.recognition.index_helpers import found_ids, hnsw_index, unit_vectors


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


def test_asking_hnsw_for_many_candidates_explores_at_least_that_many():
    # FAISS returns k hits even when efSearch < k, but ranked only as well as efSearch allows; the
    # site asks for 200 candidates, so the index must search with efSearch >= k.
    vectors = unit_vectors(20_000, dim=64, seed=3)
    queries = unit_vectors(50, dim=64, seed=4)
    exact = VectorIndex.build(np.arange(20_000), vectors, flat_max_items=100_000)
    approximate = VectorIndex.build(np.arange(20_000), vectors, flat_max_items=1000)
    faiss.downcast_index(approximate._index.index).hnsw.efSearch = 8  # a deliberately weak default

    def recall_at_10(k: int) -> float:
        truth, found = exact.search(queries, 10), approximate.search(queries, k)
        return float(np.mean([
            len({h.id for h in t} & {h.id for h in f[:10]}) / 10 for t, f in zip(truth, found, strict=True)
        ]))

    assert recall_at_10(k=400) > recall_at_10(k=8) + 0.2
    assert recall_at_10(k=400) >= 0.9


@pytest.mark.parametrize(
    ("flat_max_items", "scan_per_root"),
    [(10_000, None), (10, None), (10, 0)],
    ids=["flat", "hnsw, matches scanned", "hnsw, graph walked"],
)
def test_searching_among_some_ids_finds_their_nearest_however_far_down_the_whole_ranking(
    monkeypatch, flat_max_items, scan_per_root
):
    # given: 2,000 vectors, of which every 20th (a refine's matching photos) may be returned
    if scan_per_root is not None:
        monkeypatch.setattr("recognition.index.SCAN_AMONG_MATCHES_PER_ROOT", scan_per_root)
    vectors = unit_vectors(2000, seed=4)
    index = VectorIndex.build(np.arange(2000), vectors, flat_max_items=flat_max_items)
    among = np.arange(0, 2000, 20)
    query = vectors[7]  # not among them: its own nearest neighbours mostly are not either

    # when
    hits = index.search_among(query, 10, among)

    # then: the 10 nearest of those 100, by exact inner product, nearest first
    exact = among[np.argsort(-(vectors[among] @ query))[:10]]
    assert [hit.id for hit in hits] == exact.tolist()


@pytest.mark.parametrize("scan_per_root", [None, 0], ids=["matches scanned", "graph walked"])
def test_searching_among_ids_skips_removed_ones_and_ids_not_in_the_index(monkeypatch, scan_per_root):
    if scan_per_root is not None:
        monkeypatch.setattr("recognition.index.SCAN_AMONG_MATCHES_PER_ROOT", scan_per_root)
    index, vectors = hnsw_index()
    index.remove(np.array([3]))

    hits = index.search_among(vectors[3], 5, np.array([3, 4, 5, 9_999]))

    assert sorted(hit.id for hit in hits) == [4, 5]


def test_removing_from_hnsw_tombstones_instead_of_rebuilding_and_the_ids_never_come_back():
    # given an HNSW index (building it is the cost a removal used to pay again)
    vectors = unit_vectors(3000, seed=4)
    started = time.perf_counter()
    index = VectorIndex.build(np.arange(3000), vectors, flat_max_items=10)
    build_s = time.perf_counter() - started

    # when 100 ids are removed (3%, below the compaction threshold)
    gone = np.arange(0, 3000, 30)
    started = time.perf_counter()
    assert index.remove(np.concatenate([gone, [99_999]])) == 100
    remove_s = time.perf_counter() - started

    # then nothing was rebuilt: the slots are tombstoned, and removal took a fraction of a build
    assert index.kind == "hnsw" and index.removed_slots == 100
    assert remove_s < build_s / 10, (remove_s, build_s)
    assert len(index) == 2900 and not set(gone.tolist()) & set(index.ids().tolist())
    # and no query finds a removed id, even its own vector, while k live results still come back
    rows = found_ids(index, vectors[gone], 10)
    assert all(len(row) == 10 and not set(row) & set(gone.tolist()) for row in rows)


def test_an_id_removed_then_added_again_is_found_once_with_its_new_vector():
    index, vectors = hnsw_index()
    index.remove(np.array([3]))

    index.add(np.array([3]), vectors[7:8])

    assert sorted(index.ids().tolist()).count(3) == 1 and len(index) == 500
    assert set(found_ids(index, vectors[7:8], 2)[0]) == {3, 7}
    hits_near_old = index.search(vectors[3:4], 500)[0]
    # (HNSW stores vectors as float16: scores agree to about 1e-4)
    assert [hit.score for hit in hits_near_old if hit.id == 3] == pytest.approx(
        [float(vectors[3] @ vectors[7])], abs=1e-3
    )


def test_upserting_an_hnsw_id_tombstones_its_old_vector():
    index, vectors = hnsw_index()

    index.add(np.array([3]), vectors[7:8])

    assert index.kind == "hnsw" and index.removed_slots == 1
    assert [hit.id for hit in index.search(vectors[3:4], 500)[0]].count(3) == 1


def test_tombstones_survive_publishing_and_reloading(tmp_path):
    # given a published HNSW index from which ids are removed in an edit
    index, vectors = hnsw_index()
    IndexStore(tmp_path, 32).replace(index)
    with IndexStore(tmp_path, 32).editing() as editing:
        editing.remove(np.array([1, 2, 3]))
        editing.add(np.array([4]), vectors[9:10])

    # when another process loads it
    loaded = IndexStore(tmp_path, 32).load()

    # then the removals and the upsert hold there too
    assert loaded.kind == "hnsw" and loaded.removed_slots == 4 and len(loaded) == 497
    assert not {1, 2, 3} & set(loaded.ids().tolist())
    assert not {1, 2, 3} & {hit for row in found_ids(loaded, vectors[1:4], 20) for hit in row}
    assert set(found_ids(loaded, vectors[9:10], 2)[0]) == {4, 9}


def test_past_a_fifth_of_the_slots_removed_the_graph_stays_as_it_is_and_reports_compaction_due():
    # given an HNSW index of 500 vectors with exactly a fifth of its slots removed: not yet due
    index, vectors = hnsw_index()
    index.remove(np.arange(100))
    assert index.removed_slots == 100 and not index.compaction_due

    # when one more id is removed and one more upserted (past the fifth)
    index.remove(np.array([100]))
    index.add(np.array([101]), vectors[101:102])

    # then neither edit rebuilt the graph: the tombstones are all still there, and compaction is due
    assert index.kind == "hnsw" and index.removed_slots == 102 and index.compaction_due
    assert sorted(index.ids().tolist()) == list(range(101, 500))
    assert found_ids(index, vectors[200:205], 1) == [[200], [201], [202], [203], [204]]


def test_an_index_of_mostly_tombstones_still_finds_k_live_vectors_before_its_compaction():
    # given an HNSW index of 3,000 vectors of which all but 60 were removed (a mass deletion)
    index, vectors = hnsw_index(n=3000)
    index.remove(np.arange(60, 3000))

    # when it is searched for 50 neighbours
    found = found_ids(index, unit_vectors(20, seed=7), 50)

    # then each search fills its 50 from the 60 live vectors: the nearest 50, as an exact search finds them
    live = vectors[:60]
    exact = np.argsort(-(unit_vectors(20, seed=7) @ live.T), axis=1)[:, :50]
    assert [len(row) for row in found] == [50] * 20
    assert [set(row) for row in found] == [set(row) for row in exact.tolist()]


def test_compact_rebuilds_the_graph_from_the_live_vectors_alone():
    # given an HNSW index past its compaction threshold
    index, vectors = hnsw_index()
    index.remove(np.arange(150))
    assert index.compaction_due

    # when it is compacted
    index.compact()

    # then no tombstone is left, the same ids are live and each is still found by its own vector
    assert index.kind == "hnsw" and index.removed_slots == 0 and not index.compaction_due
    assert sorted(index.ids().tolist()) == list(range(150, 500))
    assert found_ids(index, vectors[200:205], 1) == [[200], [201], [202], [203], [204]]
    assert not set(range(150)) & {hit for row in found_ids(index, vectors[:20], 10) for hit in row}


def test_compacting_an_hnsw_index_that_shrank_to_the_flat_limit_makes_it_exact_again():
    # given an HNSW index of 500 vectors of which 150 were removed, with a flat limit of 400
    index, vectors = hnsw_index()
    index.remove(np.arange(150))

    # when it is compacted with the limit a full build would use
    index.compact(flat_max_items=400)

    # then it is rebuilt flat, as a build of its 350 vectors would be, and finds the exact top 10
    # (as sets: the vectors come back from the graph's float16 copies, so near-ties may swap places)
    assert index.kind == "flat" and index.removed_slots == 0 and len(index) == 350
    exact = np.argsort(-(vectors[150:200] @ vectors[150:].T), axis=1)[:, :10] + 150
    assert [set(row) for row in found_ids(index, vectors[150:200], 10)] == [set(row) for row in exact.tolist()]


def test_each_vectors_stamp_follows_it_through_upserts_removals_compaction_and_a_file(tmp_path):
    # given a flat and an HNSW index whose vectors carry stamps
    for flat_max_items in (1000, 10):
        vectors = unit_vectors(50)
        index = VectorIndex.build(np.arange(50), vectors, stamps=np.arange(50) * 10, flat_max_items=flat_max_items)

        # when ids are removed, one is upserted with a new stamp, and the index is compacted and written
        index.remove(np.arange(0, 50, 5))
        index.add(np.array([7]), vectors[8:9], stamps=np.array([777]))
        index.compact()
        index.write(tmp_path / "index")
        loaded = VectorIndex.read(tmp_path / "index", "v")

        # then every live id still has its own stamp, the upserted one its new stamp
        expected = {i: i * 10 for i in range(50) if i % 5} | {7: 777}
        assert dict(zip(loaded.ids().tolist(), loaded.stamps().tolist(), strict=True)) == expected


def test_vectors_added_without_a_stamp_or_read_from_a_file_without_stamps_have_the_unknown_stamp(tmp_path):
    # given an HNSW index with a tombstone, written as the format before stamps wrote it
    index, _ = hnsw_index(n=30)
    index.remove(np.array([4]))
    with open(tmp_path / "index", "wb") as handle:
        faiss.write_index(index._index, faiss.PyCallbackIOWriter(handle.write))
        faiss_size = handle.tell()
        handle.write(np.array([4], dtype="<i8").tobytes())
        handle.write(faiss_size.to_bytes(8, "little") + (1).to_bytes(8, "little") + TRAILER_V3_MAGIC)

    # when it is read
    loaded = VectorIndex.read(tmp_path / "index", "v")

    # then its tombstone holds and its stamps are unknown, as are those of vectors added without one
    assert loaded.removed_slots == 1 and 4 not in loaded.ids().tolist()
    assert set(loaded.stamps().tolist()) == {UNKNOWN_STAMP}
    assert set(VectorIndex.build(np.arange(3), unit_vectors(3), flat_max_items=10).stamps().tolist()) == {
        UNKNOWN_STAMP
    }


def test_a_flat_index_that_grows_past_the_limit_becomes_hnsw_at_the_next_edit():
    vectors = unit_vectors(30)
    index = VectorIndex.build(np.arange(20), vectors[:20], flat_max_items=20)
    index.add(np.array([20]), vectors[20:21])  # no limit given: an edit that does not say stays flat
    assert index.kind == "flat"

    index.add(np.arange(21, 30), vectors[21:], flat_max_items=20)

    assert index.kind == "hnsw" and len(index) == 30
    assert found_ids(index, vectors, 1) == [[i] for i in range(30)]


def test_an_edit_that_changes_nothing_publishes_nothing(tmp_path):
    store = IndexStore(tmp_path, 32)
    with store.editing() as index:
        index.add(np.arange(5), unit_vectors(5))
    version = store.current_version()

    with store.editing() as index:
        assert index.remove(np.array([99])) == 0

    assert store.current_version() == version


def test_overlapping_syncs_coalesce_and_lose_no_request(tmp_path):
    # given a source of truth (standing in for the database) and a sync that is slow to finish
    store = IndexStore(tmp_path, 32)
    vectors = unit_vectors(10)
    committed: list[int] = [0]
    calls: list[list[int]] = []
    first_round_running, let_it_finish = threading.Event(), threading.Event()

    def update(index: VectorIndex) -> None:
        wanted = list(committed)
        calls.append(wanted)
        missing = np.setdiff1d(np.array(wanted), index.ids())
        index.add(missing, vectors[missing])
        if len(calls) == 1:
            first_round_running.set()
            let_it_finish.wait(timeout=30)

    syncer = threading.Thread(target=store.sync, args=(update,))
    syncer.start()
    assert first_round_running.wait(timeout=30)

    # when more writes commit and their callers sync while the first is mid-round
    others = []
    for photo_id in range(1, 10):
        committed.append(photo_id)
        others.append(store.sync(update))
    let_it_finish.set()
    syncer.join(timeout=30)

    # then none of them waited or published; the running sync did one more round that took them all
    assert others == [False] * 9
    assert len(calls) == 2
    assert sorted(store.load().ids().tolist()) == list(range(10))
    assert not (tmp_path / SYNC_REQUEST_FILE).exists() and not (tmp_path / SYNC_RUNNING_FILE).exists()


def test_a_failed_sync_leaves_its_request_for_the_next_one(tmp_path):
    store = IndexStore(tmp_path, 32)

    def broken(index: VectorIndex) -> None:
        raise OSError("database went away")

    with pytest.raises(OSError):
        store.sync(broken)

    assert (tmp_path / SYNC_RUNNING_FILE).exists()
    assert store.sync(lambda index: index.add(np.arange(3), unit_vectors(3))) is True
    assert sorted(store.load().ids().tolist()) == [0, 1, 2]


def test_while_one_thread_reads_a_new_version_the_others_keep_searching_the_previous_one(tmp_path, monkeypatch):
    # given a process holding version 1, and version 2 just published
    store = IndexStore(tmp_path, 32)
    with store.editing() as index:
        index.add(np.array([1]), unit_vectors(1))
    first = store.load().version
    with IndexStore(tmp_path, 32).editing() as index:
        index.add(np.array([2]), unit_vectors(1, seed=1))
    second = store.current_version()

    # when one request thread starts reading version 2 (held mid-read here)
    reading, release = threading.Event(), threading.Event()
    read = VectorIndex.read

    def held_read(cls, path, version, **options):
        reading.set()
        release.wait(10)
        return read(path, version, **options)

    monkeypatch.setattr(VectorIndex, "read", classmethod(held_read))
    loaded: list[str] = []
    loader = threading.Thread(target=lambda: loaded.append(store.load().version))
    loader.start()
    assert reading.wait(10)

    # then another thread is answered at once, with version 1
    assert store.load().version == first

    # and once the read is done, everyone gets version 2
    release.set()
    loader.join(10)
    assert loaded == [second]
    assert store.load().version == second
