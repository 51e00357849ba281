"""Embed many photos in batches while a thread pool decodes the next ones, so the backbone never waits.

Two stages, as clip-retrieval's inference splits them: readers (a pool of threads that read, decode,
resize and scale each photo: Pillow and numpy release the GIL for that work) and the backbone (one
batch at a time, on the GPU when there is one). The pool keeps up to two batches decoded ahead.
Results come out in input order. A photo that cannot be read or decoded is reported in its batch's
`failures` and never stops the run. Django-free: the caller supplies the photos and stores results.
"""

from __future__ import annotations

import logging
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass, field
from typing import Any

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from recognition.backbone import EMBEDDING_DIM, Embedder
from recognition.errors import RecognitionError

logger = logging.getLogger(__name__)

# A photo to embed: its key (a photo id) and a function that returns its decoded RGB image (reading
# the file and decoding it happen in a pool thread); it raises RecognitionError or OSError when the
# photo cannot be used.
Source = tuple[Hashable, Callable[[], Image.Image]]


@dataclass(frozen=True)
class EmbeddedBatch:
    """One batch: keys, decoded images and (n, EMBEDDING_DIM) L2-normalised embeddings, row i for key i."""

    keys: list[Hashable]
    images: list[Image.Image]
    embeddings: NDArray[np.float32]
    failures: list[tuple[Hashable, str]] = field(default_factory=list)  # (key, reason)
    decode_wait_s: float = 0.0  # time the backbone waited for decoded photos before this batch
    embed_s: float = 0.0
    analyses: list[Any] = field(default_factory=list)  # `analyse(image)` for each key, when given


def embed_in_batches(
    backbone: Embedder,
    sources: Iterable[Source],
    *,
    batch_size: int,
    decode_workers: int,
    analyse: Callable[[Image.Image], Any] | None = None,
) -> Iterator[EmbeddedBatch]:
    """Yield embedded batches of at most `batch_size` photos, decoding in `decode_workers` threads.

    Lazily reads `sources`, so millions of photos need memory for two batches only. `analyse`, when
    given, also runs in the pool on each decoded image (colour analysis, say): per-photo work left to
    the caller's thread would starve a GPU that embeds thousands of photos a second.
    """
    if batch_size < 1 or decode_workers < 1:
        raise ValueError("batch_size and decode_workers must be at least 1")

    def prepare(load: Callable[[], Image.Image]) -> tuple[Image.Image, NDArray[np.float32], Any]:
        image = load()
        return image, backbone.preprocess(image), analyse(image) if analyse else None

    with ThreadPoolExecutor(max_workers=decode_workers, thread_name_prefix="decode") as pool:
        pending: deque[tuple[Hashable, Future]] = deque()
        source_iter = iter(sources)

        def fill() -> None:
            while len(pending) < 2 * batch_size:
                try:
                    key, load = next(source_iter)
                except StopIteration:
                    return
                pending.append((key, pool.submit(prepare, load)))

        fill()
        while pending:
            keys, images, inputs, analyses, failures = [], [], [], [], []
            waited = time.perf_counter()
            while pending and len(keys) + len(failures) < batch_size:
                key, future = pending.popleft()
                try:
                    image, array, analysis = future.result()
                except (RecognitionError, OSError) as exc:
                    failures.append((key, str(exc)[:500]))
                    continue
                finally:
                    fill()
                keys.append(key)
                images.append(image)
                inputs.append(array)
                analyses.append(analysis)
            decode_wait_s = time.perf_counter() - waited
            started = time.perf_counter()
            embeddings = (
                backbone.embed_batch(np.stack(inputs)) if inputs else np.zeros((0, EMBEDDING_DIM), np.float32)
            )
            yield EmbeddedBatch(
                keys=keys,
                images=images,
                embeddings=embeddings,
                failures=failures,
                decode_wait_s=decode_wait_s,
                embed_s=time.perf_counter() - started,
                analyses=analyses if analyse else [],
            )
