"""The vector index's file: the FAISS index, then its tombstones and stamps, then a trailer.

Everything is published by one rename (recognition.index_store). FAISS comes first so that processes
which only search can memory-map the file: the vectors then live once in the page cache for every
web worker instead of once per worker (2.5 GB each at a million photos). Earlier files (without
stamps, a header before FAISS, or plain FAISS) are still read, their vectors' stamps unknown;
versions before stamps cannot read files with them, so web processes and workers are upgraded
together.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass
from pathlib import Path
from typing import BinaryIO

import faiss
import numpy as np
from numpy.typing import NDArray

# Last bytes of an index file. Before them: the FAISS index's size, the count of tombstones and the
# count of stamps (8 bytes each); before those the tombstones' int64 slots, then one int64 stamp per
# slot, after the FAISS index. The sizes must add up to the file's, so a damaged file is refused
# instead of read without its tombstones or with stamps on the wrong slots.
TRAILER_MAGIC = b"FSTRAIL4"
TRAILER_SIZE = 32
# The trailer before stamps: the FAISS index's size and the count of tombstones, then its magic.
TRAILER_V3_MAGIC = b"FSTRAIL3"
TRAILER_V3_SIZE = 24
# First bytes of the previous format: then the count and slots of tombstones, then the FAISS index.
# A file with neither is a plain FAISS index, as versions before tombstones wrote.
LEGACY_MAGIC = b"FSINDEX1"
# A mapped file is read ahead this much per advice: the kernel reads at most its readahead window for one.
READ_AHEAD_CHUNK_BYTES = 2 << 20


@dataclass(frozen=True)
class IndexFileContents:
    """What a file holds: the id-mapped FAISS index, its tombstoned slots, its stamps (None in a file
    from before stamps) and whether the vectors are memory-mapped (only the current format can be)."""

    index: faiss.IndexIDMap2
    removed: NDArray[np.int64]
    stamps: NDArray[np.int64] | None
    mapped: bool


def index_file_write(
    path: Path, index: faiss.Index, *, removed: NDArray[np.int64], stamps: NDArray[np.int64]
) -> None:
    """Write one file: the FAISS index as faiss writes it, then the tombstones, the stamps and the trailer."""
    removed, stamps = removed.astype("<i8"), stamps.astype("<i8")
    with open(path, "wb") as handle:
        faiss.write_index(index, faiss.PyCallbackIOWriter(handle.write))
        faiss_size = handle.tell()
        handle.write(removed.tobytes())
        handle.write(stamps.tobytes())
        handle.write(
            b"".join(count.to_bytes(8, "little") for count in (faiss_size, len(removed), len(stamps)))
            + TRAILER_MAGIC
        )


def index_file_read(path: Path, *, mapped: bool, removed_within: int | None = None) -> IndexFileContents:
    """Read an index file, or one in an earlier format; with `mapped`, memory-map its vectors (read-only).

    Tombstones must be slots of its own index, or below `removed_within` (a delta's: its base's slots).

    Raises OSError, RuntimeError (faiss, on a truncated file) or ValueError when it is missing or corrupt.
    """
    with open(path, "rb") as handle:
        size = handle.seek(0, os.SEEK_END)
        handle.seek(0)
        if handle.read(len(LEGACY_MAGIC)) == LEGACY_MAGIC:  # tombstones first: FAISS can't map it
            count = int.from_bytes(_read_exactly(handle, 8), "little")
            removed = np.frombuffer(_read_exactly(handle, 8 * count), dtype="<i8").astype(np.int64)
            index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
            stamps = None
            mapped = False
        elif (trailer := _trailer_sections(handle, size)) is not None:
            removed, stamps = trailer
            index = faiss.read_index(str(path), faiss.IO_FLAG_MMAP_IFC if mapped else 0)
            if mapped:
                _read_ahead(path)
        else:  # plain FAISS, as versions before tombstones wrote: nothing may follow the index
            handle.seek(0)
            index = faiss.read_index(faiss.PyCallbackIOReader(handle.read))
            if handle.tell() != size:
                raise ValueError("bytes follow the FAISS index without a valid trailer: a damaged file")
            removed = np.zeros(0, dtype=np.int64)
            stamps = None
            mapped = False
    slots = index.ntotal if removed_within is None else removed_within
    if not isinstance(index, faiss.IndexIDMap2) or (len(removed) and (removed.max() >= slots or removed.min() < 0)):
        raise ValueError("not an id-mapped index, or tombstones beyond its vectors")
    if stamps is not None and len(stamps) != index.ntotal:
        raise ValueError(f"{len(stamps)} stamps for {index.ntotal} vectors")
    return IndexFileContents(index, removed, stamps, mapped)


def _read_ahead(path: Path) -> None:
    """Have the kernel read the whole file into its page cache, from a background thread.

    A mapped index's searches read its vectors in place, at random. From a cold page cache (a machine
    just started) each search faulted its pages in from disk one by one: a million-vector index (2.8
    GB) answered the API in 262 ms p50 for its first 60 searches, against 33 ms warm. One advice for
    the whole file reads only the kernel's readahead window, so it is given a chunk at a time; the
    file then streams in at disk speed (about 1 to 4 s here) while the server already answers.
    """
    if not hasattr(os, "posix_fadvise"):  # macOS, Windows: pages come in as searches touch them
        return

    def advise() -> None:
        try:
            with open(path, "rb") as handle:
                size = os.fstat(handle.fileno()).st_size
                for offset in range(0, size, READ_AHEAD_CHUNK_BYTES):
                    os.posix_fadvise(handle.fileno(), offset, READ_AHEAD_CHUNK_BYTES, os.POSIX_FADV_WILLNEED)
        except OSError:  # replaced and removed meanwhile: the next version is read ahead in its turn
            pass

    threading.Thread(target=advise, name="index-read-ahead", daemon=True).start()


def _trailer_sections(
    handle: BinaryIO, size: int
) -> tuple[NDArray[np.int64], NDArray[np.int64] | None] | None:
    """The tombstones and stamps (None in a file from before stamps) after the FAISS index.

    None when the file ends without a trailer.
    """
    if size < TRAILER_V3_SIZE:
        return None
    handle.seek(size - 8)
    magic = _read_exactly(handle, 8)
    with_stamps = magic == TRAILER_MAGIC
    trailer_size = TRAILER_SIZE if with_stamps else TRAILER_V3_SIZE
    if magic not in (TRAILER_MAGIC, TRAILER_V3_MAGIC) or size < trailer_size:
        return None
    handle.seek(size - trailer_size)
    counts = np.frombuffer(_read_exactly(handle, trailer_size - 8), dtype="<i8").tolist()
    faiss_size, removed_count, stamp_count = counts if with_stamps else [*counts, 0]
    if faiss_size + 8 * (removed_count + stamp_count) + trailer_size != size:
        raise ValueError(
            f"the trailer's sizes ({faiss_size} + {removed_count} tombstones + {stamp_count} stamps) "
            f"don't match the file's {size}"
        )
    handle.seek(faiss_size)
    removed = np.frombuffer(_read_exactly(handle, 8 * removed_count), dtype="<i8").astype(np.int64)
    if not with_stamps:
        return removed, None
    return removed, np.frombuffer(_read_exactly(handle, 8 * stamp_count), dtype="<i8").astype(np.int64)


def _read_exactly(handle: BinaryIO, size: int) -> bytes:
    data = handle.read(size)
    if len(data) != size:
        raise ValueError(f"file ends {size - len(data)} bytes early")
    return data
