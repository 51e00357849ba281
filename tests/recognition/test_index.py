"""The vector index: exact and approximate search, upserts, lazy removals, growth, atomic publishing, syncs."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from recognition.index import IndexReadOnly, IndexUnreadable, VectorIndex
from recognition.index_store import SYNC_REQUEST_FILE, SYNC_RUNNING_FILE, IndexStore

ROOT = Path(__file__).resolve().parents[2]


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


def hnsw_index(n: int = 500, seed: int = 0) -> tuple[VectorIndex, np.ndarray]:
    vectors = unit_vectors(n, seed=seed)
    index = VectorIndex.build(np.arange(n), vectors, flat_max_items=10)
    assert index.kind == "hnsw"
    return index, vectors


def found_ids(index: VectorIndex, queries: np.ndarray, k: int) -> list[list[int]]:
    return [[hit.id for hit in row] for row in index.search(queries, k)]


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


def test_an_index_file_written_by_plain_faiss_is_still_read(tmp_path):
    # given an index published before tombstones existed: the file is what faiss.write_index writes
    vectors = unit_vectors(5)
    legacy = faiss.IndexIDMap2(faiss.IndexFlatIP(32))
    legacy.add_with_ids(vectors, np.arange(10, 15))
    faiss.write_index(legacy, str(tmp_path / "index-00000000000000000001-legacy00.faiss"))
    (tmp_path / "CURRENT").write_text("00000000000000000001-legacy00")

    index = IndexStore(tmp_path, 32).load()

    assert sorted(index.ids().tolist()) == [10, 11, 12, 13, 14]
    assert found_ids(index, vectors[:1], 1) == [[10]]


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


def test_an_hnsw_index_stores_its_vectors_in_half_the_bytes_of_an_exact_one(tmp_path):
    # 1280 dimensions, as the backbone's embeddings: float16 vectors, plus the graph's links
    vectors = unit_vectors(500, dim=1280, seed=5)
    exact = VectorIndex.build(np.arange(500), vectors, flat_max_items=1000)
    graph = VectorIndex.build(np.arange(500), vectors, flat_max_items=10)
    exact.write(tmp_path / "exact")
    graph.write(tmp_path / "graph")

    assert (tmp_path / "graph").stat().st_size < 0.6 * (tmp_path / "exact").stat().st_size
    assert found_ids(graph, vectors[:20], 1) == [[i] for i in range(20)]


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


# Loads the published index in a fresh interpreter and prints how much anonymous (private) memory
# that took, in MiB. A fresh process, because in the test's own process memory freed earlier (the
# vectors it built) is reused by a copy without the resident size growing.
_LOAD_AND_MEASURE = """
import sys
from pathlib import Path

import numpy as np
from recognition.index_store import IndexStore

def anonymous_mib():
    for line in Path("/proc/self/status").read_text().splitlines():
        if line.startswith("RssAnon:"):
            return int(line.split()[1]) / 1024

store = IndexStore(Path(sys.argv[1]), 512, mapped=sys.argv[2] == "mapped")
before = anonymous_mib()
index = store.load()
growth = anonymous_mib() - before
nearest = index.search(np.eye(1, 512, dtype=np.float32), 1)[0][0].id
print(growth, index.mapped, nearest)
"""


def _load_in_a_fresh_process(directory: Path, how: str) -> tuple[float, bool, int]:
    result = subprocess.run(
        [sys.executable, "-c", _LOAD_AND_MEASURE, str(directory), how],
        cwd=ROOT, capture_output=True, text=True, timeout=120, check=True,
    )
    growth, mapped, nearest = result.stdout.split()
    return float(growth), mapped == "True", int(nearest)


@pytest.mark.skipif(not Path("/proc/self/status").exists(), reason="needs Linux's /proc/self/status")
def test_a_searching_process_maps_the_published_vectors_instead_of_copying_them(tmp_path):
    # given a published exact index of 30,000 vectors (59 MiB of float32)
    rng = np.random.default_rng(0)
    vectors = rng.standard_normal((30_000, 512)).astype(np.float32)
    vectors /= np.linalg.norm(vectors, axis=1, keepdims=True)
    IndexStore(tmp_path, 512).replace(VectorIndex.build(np.arange(30_000), vectors, flat_max_items=50_000))

    # when one process loads it for searching, and another reads a private copy as a writer does
    mapped_growth, mapped, mapped_nearest = _load_in_a_fresh_process(tmp_path, "mapped")
    copied_growth, copied, copied_nearest = _load_in_a_fresh_process(tmp_path, "copied")

    # then the searching process's vectors stay in the page cache, shared with other processes
    assert mapped and not copied
    assert copied_growth > 50
    assert mapped_growth < 10
    # and both find the same nearest vector
    assert mapped_nearest == copied_nearest == int(np.argmax(vectors[:, 0]))


def test_editing_a_mapped_index_is_refused_with_an_error_not_a_crash(tmp_path):
    # given the store's searching copy of a published index
    index, vectors = hnsw_index()
    IndexStore(tmp_path, 32).replace(index)
    loaded = IndexStore(tmp_path, 32).load()

    # when code edits it, then FAISS never sees the edit (it would abort the process on mapped vectors)
    with pytest.raises(IndexReadOnly):
        loaded.add(np.array([999]), vectors[:1])
    with pytest.raises(IndexReadOnly):
        loaded.remove(np.array([1]))
    assert len(loaded) == 500

    # and the store's editing copy takes edits as before
    with IndexStore(tmp_path, 32).editing() as editing:
        editing.remove(np.array([1]))
    assert len(IndexStore(tmp_path, 32).load()) == 499


def test_an_index_file_with_its_tombstones_in_a_header_as_before_is_still_read(tmp_path):
    # given a file in the previous format: magic, tombstone count and slots, then the FAISS index
    vectors = unit_vectors(5)
    legacy = faiss.IndexIDMap2(faiss.IndexFlatIP(32))
    legacy.add_with_ids(vectors, np.arange(10, 15))
    with open(tmp_path / "index-00000000000000000001-header00.faiss", "wb") as handle:
        handle.write(b"FSINDEX1" + (1).to_bytes(8, "little") + np.array([2], dtype="<i8").tobytes())
        faiss.write_index(legacy, faiss.PyCallbackIOWriter(handle.write))
    (tmp_path / "CURRENT").write_text("00000000000000000001-header00")

    index = IndexStore(tmp_path, 32).load()

    assert sorted(index.ids().tolist()) == [10, 11, 13, 14]
    assert found_ids(index, vectors[3:4], 1) == [[13]]


@pytest.mark.parametrize("cut", [3, 30], ids=["trailer", "tombstones"])
def test_a_file_cut_short_at_its_end_is_refused_rather_than_read_without_its_tombstones(tmp_path, cut):
    # given a published HNSW index with removals, whose file then loses its last bytes
    index, _ = hnsw_index()
    store = IndexStore(tmp_path, 32)
    store.replace(index)
    with store.editing() as editing:
        editing.remove(np.array([1, 2, 3]))
    path = next(tmp_path.glob("index-*.faiss"))
    path.write_bytes(path.read_bytes()[:-cut])

    # when it is read, then it is refused (index_repair then rebuilds it from the database)
    with pytest.raises(IndexUnreadable):
        VectorIndex.read(path, "damaged")
    with pytest.raises(IndexUnreadable):
        VectorIndex.read(path, "damaged", mapped=True)


def test_a_store_told_not_to_map_reads_a_private_copy_that_it_may_edit(tmp_path):
    # given a published index (INDEX_MEMORY_MAP=0, for an INDEX_DIR shared across hosts)
    index, vectors = hnsw_index()
    IndexStore(tmp_path, 32).replace(index)

    # when a store that does not map loads it, then its copy is private and editable
    loaded = IndexStore(tmp_path, 32, mapped=False).load()
    assert not loaded.mapped
    loaded.remove(np.array([1]))
    assert len(loaded) == 499


def test_a_file_whose_trailer_sizes_do_not_add_up_is_refused(tmp_path):
    # given a published index with 8 stray bytes between its FAISS part and its tombstones
    index, _ = hnsw_index()
    index.remove(np.array([1, 2]))
    IndexStore(tmp_path, 32).replace(index)
    path = next(tmp_path.glob("index-*.faiss"))
    data = path.read_bytes()
    faiss_size = int.from_bytes(data[-24:-16], "little")
    path.write_bytes(data[:faiss_size] + b"\0" * 8 + data[faiss_size:])

    with pytest.raises(IndexUnreadable, match="don't match"):
        VectorIndex.read(path, "damaged", mapped=True)
