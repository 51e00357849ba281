"""The index files of one directory: published atomically, reloaded cheaply, edited under a lock.

The database is the source of truth; the index is a derived artefact that can always be rebuilt.
On disk, `INDEX_DIR/CURRENT` names the live version: a base file (`index-<base>.faiss`), and after a
`+` the delta published over it (`delta-<delta>.faiss`, recognition.index_layers), if any. Writers
hold an exclusive lock file, write a new file to a temporary name, fsync, rename it into place and
only then swap `CURRENT`, so a crash mid-write leaves the previous index live. Readers compare the
version in `CURRENT` (one small read) with the one they hold and reload when it changed; a new delta
over the base they hold costs them a read of the delta alone.

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
from collections.abc import Callable, Iterator
from pathlib import Path

from recognition.index import IndexUnreadable, VectorIndex, index_contents_read
from recognition.index_layers import LayeredIndex

logger = logging.getLogger(__name__)

CURRENT_FILE = "CURRENT"
LOCK_FILE = ".lock"
# Coalesced syncs (IndexStore.sync): the lock held by the process syncing, and the request others leave.
SYNC_LOCK_FILE = ".sync-lock"
REBUILD_LOCK_FILE = ".rebuild-lock"  # held by a process rebuilding the index from scratch at start
SYNC_REQUEST_FILE = ".sync-requested"
SYNC_RUNNING_FILE = ".sync-running"  # the requests a round has taken, until it has published
SYNC_QUEUED_FILE = ".sync-queued"  # a sync task is queued to run shortly (IndexStore.sync_queued)
# Marks when a process last queued a repair of an index it found unreadable (repair_queue_claim).
REPAIR_QUEUED_FILE = ".repair-queued"
SYNC_DONE_FILE = ".sync-done"  # when the last sync ended (its time) and how long it took (its text)
# Name patterns of the temporary files of `_publish`; any found while holding the lock are left-overs.
TEMP_PATTERNS = (".index-*.tmp", ".current-*")
# Between a version's base and its delta in `CURRENT`.
DELTA_SEPARATOR = "+"
# A published file that could not be read is tried again after this long, in case the failure passed
# (out of memory or file handles while mapping it); meanwhile searches keep the version they had.
UNREADABLE_RETRY_S = 30.0
# Versions a load reads in turn when each is replaced and pruned while it is read (a burst of publishes).
LOAD_ATTEMPTS = 3


class IndexStore:
    """The index files of one directory: locked read-modify-write, atomic publish, cheap reload."""

    def __init__(self, directory: Path, dim: int, *, mapped: bool = True) -> None:
        self.directory = directory
        self.dim = dim
        self.mapped = mapped  # whether `load` memory-maps the vectors (shared) or reads a private copy
        self._cached: LayeredIndex | None = None
        self._base: VectorIndex | None = None  # the base `_cached` was made from, as read from its file
        # A published version that failed to read while an older one was served, and when it failed.
        self._unreadable: tuple[str, float] = ("", 0.0)
        self._lock = threading.Lock()

    def current_version(self) -> str:
        """The published version, or "" when none is published yet."""
        try:
            return (self.directory / CURRENT_FILE).read_text().strip()
        except FileNotFoundError:
            return ""

    def load(self) -> LayeredIndex:
        """The published index, reloaded only when a newer version was published.

        One thread of the process reads a new version while the others go on searching the one they
        had, so a publish never stalls the requests in flight (a read takes 0.4 s at 100k photos and
        seconds at a million). Only the first load, with nothing to fall back on, makes callers wait.
        Raises IndexUnreadable when the published file cannot be read and no earlier version is held;
        with one held, logs a warning and keeps serving it until a readable version is published.
        """
        version = self.current_version()
        cached = self._cached
        if cached is not None and (version == cached.version or self._unreadable_recently(version)):
            return cached  # a bad file is read again after a while, not on every search
        if not self._lock.acquire(blocking=cached is None):
            return cached  # another thread is loading the new version
        try:
            if self._cached is not None and self._cached.version == version:
                return self._cached
            if version:
                started = time.perf_counter()
                try:
                    index, version = self._read_latest(version)
                except IndexUnreadable as exc:
                    if self._cached is None:
                        raise
                    # Stale results beat failing every search; `index_repair` or a rebuild fixes the file.
                    logger.warning("%s; still serving index %s", exc.message, self._cached.version)
                    self._unreadable = (version, time.monotonic())
                    return self._cached
                logger.info(
                    "loaded index %s (%d vectors, %s) in %.2fs",
                    version, len(index), index.kind, time.perf_counter() - started,
                )
            else:
                index = LayeredIndex(VectorIndex(self.dim))
            self._cached = index
            return index
        finally:
            self._lock.release()

    def _read_latest(self, version: str) -> tuple[LayeredIndex, str]:
        """Read `version`, or the newer one published while it was read (and its file pruned meanwhile).

        `CURRENT` is read before the file, so two publishes in between delete the file named: that is
        no damage, and the newer version is read instead. Raises IndexUnreadable for a version that
        is still the published one, or after LOAD_ATTEMPTS versions replaced one after another.
        """
        for _ in range(LOAD_ATTEMPTS - 1):
            try:
                return self._read_cached_base(version), version
            except IndexUnreadable:
                newer = self.current_version()
                if not newer or newer == version:
                    raise
                version = newer
        return self._read_cached_base(version), version

    def _read_cached_base(self, version: str) -> LayeredIndex:
        """Read `version` for searching, reusing the base already held when only its delta is new."""
        base_version, _, _ = version.partition(DELTA_SEPARATOR)
        if self._base is None or self._base.version != base_version:
            # Kept at once: if deltas published meanwhile prune the one named, the retry reads only the next.
            self._base = VectorIndex.read(self._file(base_version), base_version, mapped=self.mapped)
        return self._read_delta(self._base, version, editable=False)

    def _read_delta(self, base: VectorIndex, version: str, *, editable: bool) -> LayeredIndex:
        """`base` with the delta `version` names over it (none when it names none)."""
        base_version, _, delta_version = version.partition(DELTA_SEPARATOR)
        # An edit of a mapped base reads it privately first; a base read privately is this edit's own.
        read_private = (
            (lambda: VectorIndex.read(self._file(base_version), base_version)) if editable and base.mapped else None
        )
        if not delta_version:
            return LayeredIndex(
                base, base_version=base_version, version=version, editable=editable, read_base_private=read_private
            )
        path = self._delta_file(delta_version)
        mapped = self.mapped and not editable  # shared by the web processes, as the base is
        contents = index_contents_read(path, version, mapped=mapped, removed_within=base.slots)
        delta = VectorIndex(self.dim, contents.index, stamps=contents.stamps, mapped=contents.mapped)
        return LayeredIndex(
            base, base_version=base_version, delta=delta, removed=contents.removed, version=version,
            editable=editable, read_base_private=read_private,
        )

    def _unreadable_recently(self, version: str) -> bool:
        """Whether `version` failed to read less than UNREADABLE_RETRY_S ago (the failure may have passed)."""
        failed_version, failed_at = self._unreadable
        return version == failed_version and time.monotonic() - failed_at < UNREADABLE_RETRY_S

    @contextlib.contextmanager
    def editing(self) -> Iterator[LayeredIndex]:
        """Yield an editable copy of the latest index under an exclusive lock, then publish it if it changed.

        Its base is mapped (where the store maps), not copied, until an edit must change the base
        itself (a flat base, a merge, a compaction): an edit of a large catalog then holds no second
        copy of its vectors. If the body raises, nothing is published.
        """
        with self._locked(LOCK_FILE, blocking=True):
            version = self.current_version()
            if version:
                base_version = version.partition(DELTA_SEPARATOR)[0]
                base = VectorIndex.read(self._file(base_version), base_version, mapped=self.mapped)
                index = self._read_delta(base, version, editable=True)
            else:
                index = LayeredIndex(VectorIndex(self.dim), editable=True)
            yield index
            if index.changed:
                self._publish(index)

    def snapshot(self) -> LayeredIndex:
        """A private, editable copy of the latest index, read without the writer lock and never published.

        A compaction builds its new base on one (minutes at a million photos) while syncs go on
        publishing, then brings it in with `sync(..., wait=True)` and `LayeredIndex.rebase`. The base
        is read privately at once, so a publish meanwhile cannot prune its file from under it.
        """
        for attempt in range(LOAD_ATTEMPTS):
            version = self.current_version()
            if not version:
                return LayeredIndex(VectorIndex(self.dim), editable=True)
            base_version = version.partition(DELTA_SEPARATOR)[0]
            try:
                base = VectorIndex.read(self._file(base_version), base_version)
                return self._read_delta(base, version, editable=True)
            except IndexUnreadable:
                if attempt == LOAD_ATTEMPTS - 1 or self.current_version() == version:
                    raise
        raise AssertionError("unreachable")  # the loop returns or raises

    def replace(self, index: VectorIndex) -> None:
        """Publish `index` as the new version (used by a full rebuild)."""
        with self._locked(LOCK_FILE, blocking=True):
            self._publish(index)

    def sync(self, update: Callable[[LayeredIndex], object], *, timed: bool = True, wait: bool = False) -> bool:
        """Run `update` on the latest index and publish the result, coalescing callers that overlap.

        For edits whose content comes from elsewhere (the database): `update` must bring the index
        up to date with everything committed before it runs, not apply one caller's change. The
        caller leaves a request file, then takes the sync lock without waiting. If it gets it, it
        runs `update` (under the writer lock, via `editing`) until no request is left. If another
        process holds it, the caller returns at once: that process sees the request before it
        lets go and runs `update` again, after the caller's commit. So a burst of callers costs
        about two publishes, not one each. A round that raises, or whose process is killed, leaves
        its requests behind for the next caller's sync (and `index_repair` on process start), so
        none is lost. Returns whether this call ran `update`.

        With `timed`, each round records when it ended and how long it took (`sync_rested`); a
        compaction's rounds do not. With `wait`, the caller waits for the process holding the sync to
        let go, and then runs: for work that must not be dropped (a compaction's new base).
        """
        self.directory.mkdir(parents=True, exist_ok=True)
        request, running = self.directory / SYNC_REQUEST_FILE, self.directory / SYNC_RUNNING_FILE
        request.touch()
        ran = False
        # Checked again after letting go: a request left while we held the lock, by a caller that
        # then failed to get it, is ours to serve.
        while request.exists():
            with self._locked(SYNC_LOCK_FILE, blocking=wait) as held:
                if not held:
                    return ran
                if wait and not ran:
                    # The process waited for may have served the request with its own update: this
                    # caller's must still run once.
                    request.touch()
                while request.exists() or running.exists():
                    # Taken before `update` reads anything, so a request left from here on gets another
                    # round; kept until the round published, so a round that fails or dies is redone.
                    with contextlib.suppress(FileNotFoundError):
                        os.replace(request, running)
                    started = time.perf_counter()
                    with self.editing() as index:
                        update(index)
                    if timed:
                        with contextlib.suppress(OSError):  # advice for the next caller, not worth failing a round
                            (self.directory / SYNC_DONE_FILE).write_text(f"{time.perf_counter() - started:.3f}")
                    running.unlink()
                    ran = True
        return ran

    def sync_pending(self) -> bool:
        """Whether a sync request waits for a round (left by a caller while another process held the sync)."""
        return (self.directory / SYNC_REQUEST_FILE).exists() or (self.directory / SYNC_RUNNING_FILE).exists()

    def sync_rested(self, *, least_s: float, factor: float) -> bool:
        """Whether no sync round is running and the last one ended at least `least_s` ago and at least
        `factor` times as long as it took (or none has run here): lets callers bound the share of their
        time that syncs take. A request left during a round would only make the round run again."""
        if (self.directory / SYNC_RUNNING_FILE).exists():
            return False
        done = self.directory / SYNC_DONE_FILE
        try:
            ended = done.stat().st_mtime
        except FileNotFoundError:
            return True
        try:
            took = float(done.read_text())
        except (OSError, ValueError):  # being written, or unreadable: the time alone
            took = 0.0
        return time.time() - ended >= max(least_s, factor * took)

    def sync_queued(self, *, within_s: float) -> bool:
        """Whether a sync was marked queued less than `within_s` seconds ago (`sync_queue_mark`).

        Lets callers queue one delayed sync for many edits. An older mark counts as lost (a worker died
        holding its task), so the next caller queues another: a duplicate sync costs one reconcile.
        """
        try:
            return time.time() - (self.directory / SYNC_QUEUED_FILE).stat().st_mtime < within_s
        except FileNotFoundError:
            return False

    def sync_queue_mark(self) -> None:
        self.directory.mkdir(parents=True, exist_ok=True)
        (self.directory / SYNC_QUEUED_FILE).touch()

    def sync_queue_clear(self) -> None:
        """Called by the queued sync before it reads anything, so an edit from then on queues another."""
        (self.directory / SYNC_QUEUED_FILE).unlink(missing_ok=True)

    def repair_queue_claim(self, *, within_s: float) -> bool:
        """Whether the caller is the one to queue a repair: none was claimed, by any process, less than
        `within_s` seconds ago. Every sync finds an unreadable index so until its rebuild is published."""
        mark = self.directory / REPAIR_QUEUED_FILE
        try:
            if time.time() - mark.stat().st_mtime < within_s:
                return False
        except FileNotFoundError:
            pass
        self.directory.mkdir(parents=True, exist_ok=True)
        mark.touch()
        return True

    @contextlib.contextmanager
    def rebuilding(self) -> Iterator[bool]:
        """Claim the one rebuild from scratch that processes starting together would each begin.

        Yields False when another process holds the claim: a second rebuild of a large catalog would
        cost minutes and a second copy of every vector for nothing.
        """
        with self._locked(REBUILD_LOCK_FILE, blocking=False) as held:
            yield held

    @contextlib.contextmanager
    def _locked(self, name: str, *, blocking: bool) -> Iterator[bool]:
        """Hold the lock file `name` of this directory; yields False when not `blocking` and it is taken."""
        self.directory.mkdir(parents=True, exist_ok=True)
        with open(self.directory / name, "w") as lock_handle:
            try:
                fcntl.flock(lock_handle, fcntl.LOCK_EX if blocking else fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                held = False
            else:
                held = True
            try:
                yield held
            finally:
                if held:
                    fcntl.flock(lock_handle, fcntl.LOCK_UN)

    def _file(self, version: str) -> Path:
        return self.directory / f"index-{version}.faiss"

    def _delta_file(self, delta_version: str) -> Path:
        return self.directory / f"delta-{delta_version}.faiss"

    def _publish(self, index: LayeredIndex | VectorIndex) -> None:
        """Write the index's delta alone over the base it was read with, or the whole index as a new base."""
        # Versions sort by time, so the newest is obvious on disk; the suffix keeps them unique.
        written = f"{time.time_ns():020d}-{uuid.uuid4().hex[:8]}"
        previous = self.current_version()
        if isinstance(index, LayeredIndex) and not index.base_changed and index.base_version:
            version = f"{index.base_version}{DELTA_SEPARATOR}{written}"
            self._write_durably(self._delta_file(written), lambda path: _delta_write(index, path))
        else:
            version = written
            if isinstance(index, LayeredIndex):
                index.merge()  # a delta left beside a base written whole would be lost with it
            whole = index.base if isinstance(index, LayeredIndex) else index
            self._write_durably(self._file(written), whole.write)
        fd, tmp_current = tempfile.mkstemp(dir=self.directory, prefix=".current-")
        try:
            with os.fdopen(fd, "w") as handle:
                handle.write(version)
                handle.flush()
                os.fsync(handle.fileno())
            os.chmod(tmp_current, 0o644)
            os.replace(tmp_current, self.directory / CURRENT_FILE)
            # The renames are durable only once the directory itself is synced.
            self._fsync_directory()
        finally:
            Path(tmp_current).unlink(missing_ok=True)
        index.version = version
        self._prune(keep={version, previous})
        logger.info("published index %s (%d vectors, %s)", version, len(index), index.kind)

    def _write_durably(self, target: Path, write: Callable[[Path], None]) -> None:
        """Write a file under a temporary name, fsync it and rename it to `target`."""
        fd, tmp = tempfile.mkstemp(dir=self.directory, prefix=".index-", suffix=".tmp")
        os.close(fd)
        try:
            write(Path(tmp))
            with open(tmp, "rb") as handle:
                os.fsync(handle.fileno())
            os.chmod(tmp, 0o644)  # mkstemp makes it private; web and worker users may differ
            os.replace(tmp, target)
            # Durable before `CURRENT` names it: POSIX does not promise that two renames reach the disk in order.
            self._fsync_directory()
        finally:
            Path(tmp).unlink(missing_ok=True)

    def _fsync_directory(self) -> None:
        fd = os.open(self.directory, os.O_RDONLY)
        try:
            os.fsync(fd)
        finally:
            os.close(fd)

    def _prune(self, keep: set[str]) -> None:
        """Delete every file but the live and the previous version's (base and delta), and temporary files.

        The previous version stays for a reader that read `CURRENT` just before the swap and is
        still loading its file. A reader that memory-mapped an older one keeps reading it: on a
        local file system a deleted file lives on while it is mapped (not so across hosts on a
        network file system: INDEX_MEMORY_MAP). Any other file, and any temporary file, was left by
        a writer that died (no other writer is active).
        """
        for pattern in TEMP_PATTERNS:
            for path in self.directory.glob(pattern):
                path.unlink(missing_ok=True)
        kept = set()
        for version in filter(None, keep):
            base_version, _, delta_version = version.partition(DELTA_SEPARATOR)
            kept.add(self._file(base_version))
            if delta_version:
                kept.add(self._delta_file(delta_version))
        for path in [*self.directory.glob("index-*.faiss"), *self.directory.glob("delta-*.faiss")]:
            if path not in kept:
                path.unlink(missing_ok=True)


def _delta_write(index: LayeredIndex, path: Path) -> None:
    """The delta's file: its vectors as a flat FAISS index, and as its tombstones the base slots it removes."""
    index.delta.write(path, tombstones=index.delta_removed())


_stores: dict[tuple[Path, int, bool], IndexStore] = {}
_stores_lock = threading.Lock()


def get_index_store(directory: Path, dim: int, *, mapped: bool = True) -> IndexStore:
    """The process-wide store for `directory` (one cached index per directory)."""
    key = (directory, dim, mapped)
    with _stores_lock:
        store = _stores.get(key)
        if store is None:
            store = _stores[key] = IndexStore(directory, dim, mapped=mapped)
        return store
