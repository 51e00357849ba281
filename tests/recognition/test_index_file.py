"""The index file: its format (and the formats of before), damage detection, memory-mapped searching copies."""

from __future__ import annotations

import ctypes
import mmap
import os
import subprocess
import sys
import time
from pathlib import Path

import faiss
import numpy as np
import pytest

from recognition.index import IndexReadOnly, IndexUnreadable, VectorIndex
from recognition.index_store import IndexStore
from tests.recognition.index_helpers import found_ids, hnsw_index, unit_vectors

ROOT = Path(__file__).resolve().parents[2]


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


def test_an_hnsw_index_stores_its_vectors_in_half_the_bytes_of_an_exact_one(tmp_path):
    # 1280 dimensions, as the backbone's embeddings: float16 vectors, plus the graph's links
    vectors = unit_vectors(500, dim=1280, seed=5)
    exact = VectorIndex.build(np.arange(500), vectors, flat_max_items=1000)
    graph = VectorIndex.build(np.arange(500), vectors, flat_max_items=10)
    exact.write(tmp_path / "exact")
    graph.write(tmp_path / "graph")

    assert (tmp_path / "graph").stat().st_size < 0.6 * (tmp_path / "exact").stat().st_size
    assert found_ids(graph, vectors[:20], 1) == [[i] for i in range(20)]


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


def test_a_store_told_not_to_map_reads_a_private_copy_edited_only_through_editing(tmp_path):
    # given a published index (INDEX_MEMORY_MAP=0, for an INDEX_DIR shared across hosts)
    index, vectors = hnsw_index()
    IndexStore(tmp_path, 32).replace(index)

    # when a store that does not map loads it, then its copy is private
    store = IndexStore(tmp_path, 32, mapped=False)
    loaded = store.load()
    assert not loaded.mapped

    # and, shared by every search of the process, it refuses edits: they go through `editing`
    with pytest.raises(IndexReadOnly):
        loaded.remove(np.array([1]))
    assert len(loaded) == 500
    with store.editing() as editable:
        editable.remove(np.array([1]))
    assert len(store.load()) == 499


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


def resident_share(path: Path) -> float:
    """The share of a file's pages that are in the kernel's page cache (mincore on a mapping of it)."""
    libc = ctypes.CDLL(None, use_errno=True)
    size = path.stat().st_size
    pages = -(-size // mmap.PAGESIZE)
    resident = (ctypes.c_ubyte * pages)()
    with open(path, "rb") as handle, mmap.mmap(handle.fileno(), size, access=mmap.ACCESS_COPY) as mapped:
        start = ctypes.c_char.from_buffer(mapped)
        try:
            if libc.mincore(ctypes.byref(start), ctypes.c_size_t(size), resident) != 0:
                raise OSError(ctypes.get_errno(), "mincore")
        finally:
            del start  # the mapping cannot close while a pointer into it lives
    return sum(byte & 1 for byte in resident) / pages


@pytest.mark.skipif(not hasattr(os, "posix_fadvise"), reason="the kernel is advised through posix_fadvise")
def test_a_mapped_index_is_read_into_the_page_cache_before_searches_need_it(tmp_path):
    # given: a published index of 50 MB, written to disk and dropped from the page cache (a cold start)
    path = tmp_path / "index"
    VectorIndex.build(np.arange(10_000), unit_vectors(10_000, dim=1280), flat_max_items=20_000).write(path)
    with open(path, "rb") as handle:
        os.fsync(handle.fileno())
        os.posix_fadvise(handle.fileno(), 0, 0, os.POSIX_FADV_DONTNEED)
    if resident_share(path) > 0.3:
        pytest.skip("this file system keeps the file in memory (tmpfs): there is no cold start to test")

    # when: a searching process maps it
    index = VectorIndex.read(path, "cold", mapped=True)

    # then: the whole file comes into the page cache in the background, before any search touched it
    deadline = time.monotonic() + 20
    while resident_share(path) < 0.95 and time.monotonic() < deadline:
        time.sleep(0.05)
    assert resident_share(path) >= 0.95
    assert index.mapped
