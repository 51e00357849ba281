"""A writer process killed (SIGKILL) at any step of publishing the index leaves the previous index live.

The writer is a real process that really dies; only the moment of death is chosen, by wrapping one
step of `IndexStore._publish` in that process so that it kills itself there. The surviving files
are then read by a fresh store, as a web process starting afterwards would.
"""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from recognition.index import VectorIndex
from recognition.index_store import DELTA_SEPARATOR, IndexStore

ROOT = Path(__file__).resolve().parents[2]
DIM = 32

# Runs in the writer process: arm the crash point, then add ids 5..9 to the published index.
WRITER = """
import os, signal, sys
from pathlib import Path
import numpy as np
from recognition import index as index_module
from recognition import index_store as store_module

directory, crash_at, dim = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3])

def die():
    os.kill(os.getpid(), signal.SIGKILL)

if crash_at == "writing-index-file":  # half the bytes are on disk under the temporary name
    real_write = index_module.VectorIndex.write
    def write(self, path, **options):
        real_write(self, path, **options)
        with open(path, "r+b") as handle:
            handle.truncate(path.stat().st_size // 2)
        die()
    index_module.VectorIndex.write = write
elif crash_at == "swapping-current":  # the new file is complete and in place; CURRENT still old
    real_replace = os.replace
    def replace(source, target):
        if Path(target).name == store_module.CURRENT_FILE:
            die()
        real_replace(source, target)
    os.replace = replace

vectors = np.random.default_rng(1).standard_normal((5, dim)).astype(np.float32)
store = store_module.IndexStore(directory, dim)
with store.editing() as index:
    index.add(np.arange(5, 10), vectors / np.linalg.norm(vectors, axis=1, keepdims=True))
"""


def unit_vectors(n: int, seed: int) -> np.ndarray:
    vectors = np.random.default_rng(seed).standard_normal((n, DIM)).astype(np.float32)
    return vectors / np.linalg.norm(vectors, axis=1, keepdims=True)


def run_writer(directory: Path, crash_at: str) -> int:
    completed = subprocess.run(
        [sys.executable, "-c", WRITER, str(directory), crash_at, str(DIM)], cwd=ROOT, capture_output=True, timeout=120
    )
    return completed.returncode


@pytest.fixture
def published(tmp_path: Path) -> tuple[Path, np.ndarray, str]:
    """An index directory with ids 0..4 published; returns it, their vectors and the version."""
    vectors = unit_vectors(5, seed=0)
    store = IndexStore(tmp_path, DIM)
    with store.editing() as index:
        index.add(np.arange(5), vectors)
    return tmp_path, vectors, store.current_version()


def leftovers(directory: Path, version: str) -> list[str]:
    """Files other than the lock, CURRENT and the live index file."""
    keep = {".lock", "CURRENT", f"index-{version}.faiss"}
    return sorted(path.name for path in directory.iterdir() if path.name not in keep)


@pytest.mark.parametrize("crash_at", ["writing-index-file", "swapping-current"])
def test_a_writer_killed_mid_publish_leaves_the_previous_index_live(published, crash_at):
    directory, vectors, version = published

    # when a writer process is killed while publishing ids 5..9
    assert run_writer(directory, crash_at) == -signal.SIGKILL
    assert leftovers(directory, version), "the writer died before leaving anything half-done"

    # then a process starting now loads the previous index, intact
    store = IndexStore(directory, DIM)
    assert store.current_version() == version
    index = store.load()
    assert sorted(index.ids().tolist()) == [0, 1, 2, 3, 4]
    assert [row[0].id for row in index.search(vectors, 1)] == [0, 1, 2, 3, 4]

    # and the next writer is not blocked by the dead one's lock, publishes, and clears the debris
    assert run_writer(directory, "never") == 0
    assert sorted(store.load().ids().tolist()) == list(range(10))
    assert leftovers(directory, store.current_version()) == [f"index-{version}.faiss"]


def test_a_half_written_index_file_that_current_does_not_name_is_never_read(published):
    directory, vectors, version = published
    # given a truncated file with a newer version name than the live one
    live = directory / f"index-{version}.faiss"
    (directory / "index-99999999999999999999-deadbeef.faiss").write_bytes(live.read_bytes()[:100])

    assert sorted(IndexStore(directory, DIM).load().ids().tolist()) == [0, 1, 2, 3, 4]
    assert run_writer(directory, "never") == 0
    assert "index-99999999999999999999-deadbeef.faiss" not in leftovers(directory, version)


@pytest.fixture
def published_hnsw(tmp_path: Path) -> tuple[Path, str]:
    """An index directory with an HNSW index of ids 0..49 published, so edits publish a delta over it."""
    store = IndexStore(tmp_path, DIM)
    store.replace(VectorIndex.build(np.arange(50), unit_vectors(50, seed=0), flat_max_items=10))
    return tmp_path, store.current_version()


@pytest.mark.parametrize("crash_at", ["writing-index-file", "swapping-current"])
def test_a_writer_killed_mid_delta_publish_leaves_the_previous_index_live(published_hnsw, crash_at):
    directory, version = published_hnsw
    replaced = unit_vectors(5, seed=1)  # the writer's new vectors for ids 5..9

    # when a writer process is killed while publishing its delta
    assert run_writer(directory, crash_at) == -signal.SIGKILL

    # then a process starting now loads the previous index, without the writer's vectors
    store = IndexStore(directory, DIM)
    assert store.current_version() == version
    assert sorted(store.load().ids().tolist()) == list(range(50))
    assert [row[0].id for row in store.load().search(replaced, 1)] != [5, 6, 7, 8, 9]

    # and the next writer publishes its delta over the same base and clears the debris
    assert run_writer(directory, "never") == 0
    current = store.current_version()
    base_version, _, delta_version = current.partition(DELTA_SEPARATOR)
    assert base_version == version and delta_version
    assert [row[0].id for row in store.load().search(replaced, 1)] == [5, 6, 7, 8, 9]
    names = {path.name for path in directory.iterdir()}
    assert names == {".lock", "CURRENT", f"index-{version}.faiss", f"delta-{delta_version}.faiss"}
