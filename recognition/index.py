"""The FAISS vector index: exact while small, HNSW beyond a size limit, persisted atomically.

The database is the source of truth; this index is a derived artefact that can always be rebuilt.
On disk, `INDEX_DIR/CURRENT` names the live index file (`index-<version>.faiss`). Writers hold an
exclusive lock file, write a new file to a temporary name, fsync, rename it into place and only
then swap `CURRENT`, so a crash mid-write leaves the previous index live. Readers compare the
version in `CURRENT` (one small read) with the one they hold and reload when it changed.

A writer killed mid-publish leaves at most a temporary file (`.index-*.tmp`, `.current-*`) or a
finished index file that `CURRENT` does not name. Neither is ever read; the next writer, holding the
lock and so knowing that no other writer is active, deletes them. Tested by killing a real writer
process at each step (tests/e2e/test_index_crash.py).
"""

from __future__ import annotations

import contextlib
import fcntl
import logging
import os
import tempfile
import threading
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import faiss
import numpy as np
from numpy.typing import NDArray

from recognition.errors import RecognitionError

logger = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
LOCK_FILE = ".lock"
HNSW_NEIGHBOURS = 32
HNSW_EF_CONSTRUCTION = 80
HNSW_EF_SEARCH = 128
# Name patterns of the temporary files of `_publish`; any found while holding the lock are left-overs.
TEMP_PATTERNS = (".index-*.tmp", ".current-*")


class IndexUnreadable(RecognitionError):
    """The file that `CURRENT` names is missing or not a FAISS index (the index must be rebuilt)."""

    code = "index_unreadable"


@dataclass(frozen=True)
class IndexHit:
    """One search result: an external id (a photo id) and its inner-product similarity."""

    id: int
    score: float


class VectorIndex:
    """Inner-product search over L2-normalised vectors, keyed by int64 ids.

    Not thread-safe for writes; the store serialises writers with a file lock.
    """

    def __init__(self, dim: int, faiss_index: faiss.Index | None = None, version: str = "") -> None:
        self.dim = dim
        self.version = version
        self._index = faiss_index if faiss_index is not None else self._empty_flat(dim)

    @staticmethod
    def _empty_flat(dim: int) -> faiss.Index:
        return faiss.IndexIDMap2(faiss.IndexFlatIP(dim))

    @classmethod
    def build(
        cls, ids: NDArray[np.int64], vectors: NDArray[np.float32], *, flat_max_items: int
    ) -> VectorIndex:
        """Build an exact index up to `flat_max_items` vectors, an HNSW index beyond."""
        dim = vectors.shape[1]
        if len(ids) <= flat_max_items:
            index = cls._empty_flat(dim)
        else:
            hnsw = faiss.IndexHNSWFlat(dim, HNSW_NEIGHBOURS, faiss.METRIC_INNER_PRODUCT)
            hnsw.hnsw.efConstruction = HNSW_EF_CONSTRUCTION
            hnsw.hnsw.efSearch = HNSW_EF_SEARCH
            index = faiss.IndexIDMap2(hnsw)
        vector_index = cls(dim, index)
        vector_index.add(ids, vectors)
        return vector_index

    @property
    def kind(self) -> str:
        inner = faiss.downcast_index(self._index.index)
        return "hnsw" if isinstance(inner, faiss.IndexHNSW) else "flat"

    def __len__(self) -> int:
        return int(self._index.ntotal)

    def ids(self) -> NDArray[np.int64]:
        return faiss.vector_to_array(self._index.id_map).astype(np.int64)

    def add(self, ids: NDArray[np.int64], vectors: NDArray[np.float32]) -> None:
        """Add or replace vectors: an id already present is removed first (upsert)."""
        if len(ids) == 0:
            return
        ids = np.ascontiguousarray(ids, dtype=np.int64)
        vectors = np.ascontiguousarray(vectors, dtype=np.float32)
        if vectors.shape != (len(ids), self.dim):
            raise ValueError(f"expected vectors of shape ({len(ids)}, {self.dim}), got {vectors.shape}")
        self.remove(ids)
        self._index.add_with_ids(vectors, ids)

    def remove(self, ids: NDArray[np.int64]) -> int:
        """Remove ids (absent ones are ignored); returns how many were removed."""
        present = np.intersect1d(self.ids(), np.asarray(ids, dtype=np.int64))
        if len(present) == 0:
            return 0
        if self.kind == "flat":
            return int(self._index.remove_ids(faiss.IDSelectorBatch(present)))
        # HNSW graphs cannot drop nodes: rebuild from the remaining vectors (deletions are rare).
        keep = np.setdiff1d(self.ids(), present)
        vectors = np.vstack([self._index.reconstruct(int(i)) for i in keep]) if len(keep) else None
        rebuilt = VectorIndex.build(
            keep, vectors if vectors is not None else np.zeros((0, self.dim), np.float32), flat_max_items=-1
        )
        self._index = rebuilt._index
        return len(present)

    def search(self, queries: NDArray[np.float32], k: int) -> list[list[IndexHit]]:
        """The `k` nearest ids of each query, best first; ties broken by id for stable pages."""
        if len(self) == 0 or k <= 0:
            return [[] for _ in range(len(queries))]
        scores, ids = self._index.search(np.ascontiguousarray(queries, dtype=np.float32), min(k, len(self)))
        results = []
        for row_scores, row_ids in zip(scores, ids, strict=True):
            hits = [IndexHit(int(i), float(s)) for s, i in zip(row_scores, row_ids, strict=True) if i >= 0]
            hits.sort(key=lambda hit: (-round(hit.score, 6), hit.id))
            results.append(hits)
        return results

    def write(self, path: Path) -> None:
        faiss.write_index(self._index, str(path))

    @classmethod
    def read(cls, path: Path, version: str) -> VectorIndex:
        """Read an index file; raises IndexUnreadable when it is missing or corrupt."""
        try:
            index = faiss.read_index(str(path))
        except RuntimeError as exc:  # faiss reports missing and truncated files alike as RuntimeError
            raise IndexUnreadable(f"index {version} at {path} cannot be read: {str(exc)[:200]}") from None
        return cls(index.d, index, version)


class IndexStore:
    """The index files of one directory: locked read-modify-write, atomic publish, cheap reload."""

    def __init__(self, directory: Path, dim: int) -> None:
        self.directory = directory
        self.dim = dim
        self._cached: VectorIndex | None = None
        self._lock = threading.Lock()

    def current_version(self) -> str:
        """The published version, or "" when none is published yet."""
        try:
            return (self.directory / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return ""

    def load(self) -> VectorIndex:
        """The published index, reloaded only when a newer version was published.

        Raises IndexUnreadable when the published file cannot be read.
        """
        version = self.current_version()
        with self._lock:
            if self._cached is not None and self._cached.version == version:
                return self._cached
            if version:
                started = time.perf_counter()
                index = VectorIndex.read(self._file(version), version)
                logger.info(
                    "loaded index %s (%d vectors, %s) in %.2fs",
                    version, len(index), index.kind, time.perf_counter() - started,
                )
            else:
                index = VectorIndex(self.dim)
            self._cached = index
            return index

    @contextlib.contextmanager
    def editing(self) -> Iterator[VectorIndex]:
        """Yield a private copy of the latest index under an exclusive lock, then publish it.

        If the body raises, nothing is published.
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / LOCK_FILE, "w") as lock_handle:
            fcntl.flock(lock_handle, fcntl.LOCK_EX)
            try:
                version = self.current_version()
                index = (
                    VectorIndex.read(self._file(version), version) if version else VectorIndex(self.dim)
                )
                yield index
                self._publish(index)
            finally:
                fcntl.flock(lock_handle, fcntl.LOCK_UN)

    def replace(self, index: VectorIndex) -> None:
        """Publish `index` as the new version (used by a full rebuild)."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / LOCK_FILE, "w") as lock_handle:
            fcntl.flock(lock_handle, fcntl.LOCK_EX)
            try:
                self._publish(index)
            finally:
                fcntl.flock(lock_handle, fcntl.LOCK_UN)

    def _file(self, version: str) -> Path:
        return self.directory / f"index-{version}.faiss"

    def _publish(self, index: VectorIndex) -> None:
        # Versions sort by time, so the newest is obvious on disk; the suffix keeps them unique.
        version = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        previous = self.current_version()
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".index-", suffix=".tmp")
        os.close(fd)
        try:
            index.write(Path(tmp))
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes it private; web and worker users may differ
            os.replace(tmp, self._file(version))
            fd, tmp_current = tempfile.mkstemp(dir=self.directory, prefix=".current-")
            with os.fdopen(fd, "w") as handle:
                handle.write(version)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_current, 0o644)
            os.replace(tmp_current, self.directory / CURRENT_FILE)
            # The renames are durable only once the directory itself is synced.
            self._fsync_directory()
        finally:
            Path(tmp).unlink(missing_ok=True)
        index.version = version
        self._prune(keep={version, previous})
        logger.info("published index %s (%d vectors, %s)", version, len(index), index.kind)

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _prune(self, keep: set[str]) -> None:
        """Delete every index file but the live and the previous version, and temporary files; under the lock.

        The previous version stays for a reader that read `CURRENT` just before the swap and is
        still loading its file; readers holding an older one keep their copy in memory. Any other
        file, and any temporary file, was left by a writer that died (no other writer is active).
        """
        for pattern in TEMP_PATTERNS:
            for path in self.directory.glob(pattern):
                path.unlink(missing_ok=True)
        kept = {self._file(version) for version in keep if version}
        for path in self.directory.glob("index-*.faiss"):
            if path not in kept:
                path.unlink(missing_ok=True)


_stores: dict[tuple[Path, int], IndexStore] = {}
_stores_lock = threading.Lock()


def get_index_store(directory: Path, dim: int) -> IndexStore:
    """The process-wide store for `directory` (one cached index per directory)."""
    key = (directory, dim)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = IndexStore(directory, dim)
        return store
