"""Embed many photos in batches while a pool of worker processes decodes the next ones, so the backbone never waits.

Two stages, as PyTorch's DataLoader and clip-retrieval's inference split them: preparation (a pool
decodes, checks, crops and analyses each photo's bytes, which the caller's thread reads) and the
backbone (one batch at a time, on the GPU when there is one). The pool keeps up to two batches
prepared ahead. Results come out in input order. A photo that cannot be read or decoded is
reported in its batch's `failures` and never stops the run. Django-free: the caller supplies the
photos and stores results.

The pool is of processes by default. With threads, the crop and the colour analysis (many small
numpy steps) hold the GIL often enough that on the 16-core H100 machine more than 8 threads made
things slower, and the thread writing results to the database waited for the GIL: retag stalled
at about 100 photos/s for a GPU that embeds 3,000 (bench/README.md). Workers hand back uint8 crops,
a quarter of the float input's bytes; the batch is scaled here, in one numpy step.
"""

from __future__ import annotations

import logging
import multiprocessing
import signal
import time
from collections import deque
from collections.abc import Callable, Hashable, Iterable, Iterator
from concurrent.futures import Executor, Future, ProcessPoolExecutor, ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np
from numpy.typing import NDArray
from threadpoolctl import threadpool_limits

from recognition.backbone import EMBEDDING_DIM, Embedder
from recognition.colour import colour_features
from recognition.errors import RecognitionError
from recognition.images import decode_image, model_crop, model_draft_size, model_inputs_scale

logger = logging.getLogger(__name__)

# A photo to embed: its key (a photo id) and a function that returns the photo file's bytes (run in
# the caller's thread, so it may use Django's storage); it raises OSError when the file is missing.
Source = tuple[Hashable, Callable[[], bytes]]
# What a worker hands back: the uint8 crop and the colour features (None unless asked for).
Prepared = tuple[NDArray[np.uint8], NDArray[np.float32] | None]


@dataclass(frozen=True)
class PhotoPreparer:
    """A photo's bytes to the backbone's crop (and its colour features): picklable, to run in a worker process."""

    input_size: int
    max_bytes: int
    max_pixels: int
    colour: bool = False

    def __call__(self, data: bytes) -> Prepared:
        image = decode_image(
            data, max_bytes=self.max_bytes, max_pixels=self.max_pixels,
            draft_size=model_draft_size(self.input_size),
        )
        return model_crop(image, size=self.input_size), colour_features(image) if self.colour else None


@dataclass(frozen=True)
class EmbeddedBatch:
    """One batch: keys and (n, EMBEDDING_DIM) L2-normalised embeddings, row i for key i."""

    keys: list[Hashable]
    embeddings: NDArray[np.float32]
    colours: list[NDArray[np.float32] | None] = field(default_factory=list)  # row i for key i
    failures: list[tuple[Hashable, str]] = field(default_factory=list)  # (key, reason)
    decode_wait_s: float = 0.0  # time the backbone waited for prepared photos before this batch
    embed_s: float = 0.0


def embed_in_batches(
    backbone: Embedder,
    sources: Iterable[Source],
    *,
    batch_size: int,
    workers: int,
    prepare: PhotoPreparer,
    processes: bool = True,
) -> Iterator[EmbeddedBatch]:
    """Yield embedded batches of at most `batch_size` photos, prepared by `workers` processes (or threads).

    Lazily reads `sources`, so millions of photos need memory for two batches only.
    """
    if batch_size < 1 or workers < 1:
        raise ValueError("batch_size and workers must be at least 1")
    if prepare.input_size != backbone.input_size:  # the crop and scaling here are to_model_input's
        raise ValueError(f"photos prepared at {prepare.input_size} px for a {backbone.input_size}-px backbone")
    with preparation_pool(workers, processes) as pool:
        pending: deque[tuple[Hashable, Future | str]] = deque()
        source_iter = iter(sources)

        def fill() -> None:
            while len(pending) < 2 * batch_size:
                try:
                    key, read = next(source_iter)
                except StopIteration:
                    return
                try:
                    pending.append((key, pool.submit(_prepare_or_reason, prepare, read())))
                except OSError as exc:
                    pending.append((key, str(exc)[:500]))

        fill()
        while pending:
            keys, crops, colours, failures = [], [], [], []
            waited = time.perf_counter()
            while pending and len(keys) + len(failures) < batch_size:
                key, job = pending.popleft()
                result = job if isinstance(job, str) else job.result()
                fill()
                if isinstance(result, str):
                    failures.append((key, result))
                    continue
                keys.append(key)
                crops.append(result[0])
                colours.append(result[1])
            decode_wait_s = time.perf_counter() - waited
            started = time.perf_counter()
            embeddings = (
                backbone.embed_batch(model_inputs_scale(np.stack(crops)))
                if crops
                else np.zeros((0, EMBEDDING_DIM), np.float32)
            )
            yield EmbeddedBatch(
                keys=keys,
                embeddings=embeddings,
                colours=colours,
                failures=failures,
                decode_wait_s=decode_wait_s,
                embed_s=time.perf_counter() - started,
            )


def preparation_pool(workers: int, processes: bool) -> Executor:
    """The pool that prepares photos: `workers` threads, or processes that each run one BLAS thread."""
    if not processes:
        return ThreadPoolExecutor(max_workers=workers, thread_name_prefix="prepare")
    # forkserver: workers start from a clean process, not a fork of this one with its model, CUDA
    # context and runtime threads (forking a multi-threaded process can deadlock the child).
    methods = multiprocessing.get_all_start_methods()
    context = multiprocessing.get_context("forkserver" if "forkserver" in methods else "spawn")
    if context.get_start_method() == "forkserver":
        context.set_forkserver_preload([__name__])  # each worker forks with numpy, Pillow and this module loaded
    return ProcessPoolExecutor(max_workers=workers, mp_context=context, initializer=_worker_start)


def _worker_start() -> None:
    """One BLAS thread per worker, as PyTorch's DataLoader gives each worker one thread.

    The colour analysis is a matrix product: 15 workers each running a 16-thread OpenBLAS pool put
    the 16-core H100 machine at a load of 95, slower than threads.
    """
    global _blas_limit
    _blas_limit = threadpool_limits(limits=1, user_api="blas")
    # Ctrl-C reaches every process of the terminal's group: the parent stops the pool, and a worker
    # would only print its own KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_IGN)


_blas_limit: threadpool_limits | None = None  # kept, so the limit lasts the worker's life


def _prepare_or_reason(prepare: PhotoPreparer, data: bytes) -> Prepared | str:
    """`prepare(data)`, or the reason the photo cannot be used (exceptions need not survive pickling)."""
    try:
        return prepare(data)
    except (RecognitionError, OSError) as exc:
        return str(exc)[:500]
