"""Re-tag catalog photos in batches: decoding in worker processes, the backbone on the GPU when present.

For bulk work (a new backbone version, a first import of thousands of photos) this beats one
`tag_photo` task per photo: the backbone sees batches (32 photos fill a GPU far better than one), a
pool of processes decodes the next batches and analyses their colours meanwhile so the GPU is not
starved, each batch is written in one transaction, and the index is rebuilt once at the end instead
of being republished after every photo. Safe to run again: by default it only takes photos not yet
tagged by the current backbone version, hand-set tags are never overwritten
(catalog.services.tagging.photos_tags_apply), and embeddings are overwritten in place.
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass

import numpy as np
from django.core.management.base import CommandError, CommandParser
from django.db import transaction
from django.utils import timezone

from catalog.management.index_folder import index_folder_errors
from catalog.models import Photo
from catalog.selectors import rows_by_key_pages
from catalog.services.index import index_rebuild, index_sync
from catalog.services.tagging import CATALOG_MAX_BYTES, CATALOG_MAX_PIXELS, photos_tags_apply
from fashion_search.commands import DatabaseCommand
from fashion_search.progress import progress_bar
from recognition.embed_pipeline import PhotoPreparer, embed_in_batches
from recognition.errors import RecognitionError
from recognition.recognizers import Prediction
from recognition.services import attribute_recognizers, backbone_get, images_recognize

logger = logging.getLogger(__name__)

# 32 photos per batch: on a GPU a batch of 32 Lite0 inputs (19 MB) keeps it busy while the pool decodes
# the next ones. On the 2-core CPU it changes less: 26-59 photos/s at batch 32 against 27-31 at batch 1,
# decoding included, depending on how busy the cores are (bench/README.md, "Embedding throughput").
DEFAULT_BATCH_SIZE = 32
# One decoding process per usable core but one, which this process needs to feed the backbone and write
# results; at most 8: on the 16-core H100 machine 8 and 15 processes tagged alike (452 and 462 photos/s).
_USABLE_CORES = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
DEFAULT_DECODE_WORKERS = max(1, min(8, _USABLE_CORES - 1))


@dataclass(frozen=True)
class RetagReport:
    tagged: int
    failed: int
    seconds: float
    decode_wait_s: float


def photos_retag(
    *,
    force: bool,
    limit: int | None,
    batch_size: int,
    decode_workers: int,
    progress: Callable[[int], None] | None = None,
) -> RetagReport:
    """Embed and tag every photo not tagged by the current backbone (all with `force`), then rebuild the index."""
    backbone = backbone_get()
    names = attribute_recognizers()
    photos = Photo.objects.order_by("pk")
    if not force:
        photos = photos.exclude(status=Photo.Status.TAGGED, embedding_model=backbone.version)
    rows = rows_by_key_pages(photos.values_list("pk", "image"), page=2000, limit=limit)
    storage = Photo._meta.get_field("image").storage

    def reader(name: str) -> Callable[[], bytes]:
        def read() -> bytes:
            with storage.open(name, "rb") as handle:
                return handle.read()

        return read

    prepare = PhotoPreparer(
        input_size=backbone.input_size, max_bytes=CATALOG_MAX_BYTES, max_pixels=CATALOG_MAX_PIXELS, colour=True
    )
    started = time.perf_counter()
    tagged = failed = 0
    decode_wait_s = 0.0
    # Keyed by photo and image, so that results for an image replaced meanwhile are not stored.
    sources = (((pk, name), reader(name)) for pk, name in rows)
    batches = embed_in_batches(backbone, sources, batch_size=batch_size, workers=decode_workers, prepare=prepare)
    try:
        for batch in batches:
            if batch.failures:
                with transaction.atomic():
                    for (pk, name), reason in batch.failures:
                        unreadable = Photo.objects.filter(pk=pk, image=name)  # not a replacement image
                        unreadable.update(status=Photo.Status.FAILED, failure_reason=reason)
            if batch.keys:
                predictions = images_recognize(
                    embeddings=batch.embeddings, colours=np.stack(batch.colours), names=names
                )
                tagged += _photos_store(batch.keys, batch.embeddings, predictions, backbone.version)
            failed += len(batch.failures)
            decode_wait_s += batch.decode_wait_s
            if progress:
                progress(len(batch.keys) + len(batch.failures))
    except KeyboardInterrupt:
        # Ctrl-C: not the rebuild (minutes at a million photos), but a sync, which replaces only the
        # vectors of the photos stored since; without it they waited for the next tagging or repair.
        if tagged:
            logger.warning(
                "interrupted: adding the %d photos tagged so far to the index "
                "(Ctrl-C again skips it; repair_index adds them later)",
                tagged,
            )
            index_sync()
        raise
    except Exception:
        # Stored photos count as tagged and a rerun skips them: index them before giving up.
        if tagged:
            try:
                index_rebuild()
            except Exception:  # noqa: BLE001 - the first failure is the one to report
                logger.exception("retag stopped, and rebuilding the index failed too")
        raise
    finally:
        # Closed here, while the database connection is open: left to the garbage collector at exit,
        # the rows' cursor printed "Exception ignored ... Cannot operate on a closed database".
        batches.close()
        sources.close()
    if tagged:
        index_rebuild()
    return RetagReport(tagged, failed, time.perf_counter() - started, decode_wait_s)


def _photos_store(
    keys: list[tuple[int, str]],
    embeddings: np.ndarray,
    predictions: list[dict[str, list[Prediction]]],
    version: str,
) -> int:
    """Write a batch's embeddings and model tags (as photo_tag does) in one transaction; returns how many
    photos still existed with the image that was read (`keys`: photo id and image name).

    One transaction per batch, not per photo: a commit per photo (an fsync on SQLite) held a GPU that
    embeds thousands of photos a second to about 50.
    """
    now = timezone.now()
    with transaction.atomic():
        photo_ids = [pk for pk, _ in keys]
        locked = Photo.objects.select_for_update().filter(pk__in=photo_ids).order_by("pk")  # in pk order: no deadlock
        # A photo whose image was replaced since it was read is left to the tagging its new image queued.
        existing = set(locked.values_list("pk", "image")) & set(keys)
        photos_tags_apply({key[0]: tags for key, tags in zip(keys, predictions, strict=True) if key in existing})
        for key, embedding in zip(keys, embeddings, strict=True):
            if key in existing:  # one plain UPDATE each: bulk_update's CASE expressions cost more to build
                Photo.objects.filter(pk=key[0]).update(
                    embedding=np.ascontiguousarray(embedding, dtype=np.float32).tobytes(),
                    embedding_model=version,
                    status=Photo.Status.TAGGED,
                    failure_reason="",
                    tagged_at=now,
                )
    return len(existing)


class Command(DatabaseCommand):
    help = (
        "Embed and tag catalog photos in batches (GPU when present, decoding in parallel), then rebuild the "
        "index. Takes photos not yet tagged by the current backbone; --force takes all."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("--batch-size", type=int, default=DEFAULT_BATCH_SIZE)
        parser.add_argument(
            "--decode-workers", type=int, default=DEFAULT_DECODE_WORKERS, help="processes decoding photos"
        )
        parser.add_argument("--force", action="store_true", help="re-tag photos already tagged by this backbone")
        parser.add_argument("--limit", type=int, help="at most this many photos")

    def handle(self, *args: object, **options: object) -> None:
        if options["batch_size"] < 1 or options["decode_workers"] < 1:
            raise CommandError("--batch-size and --decode-workers must be at least 1")
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError(f"--limit must be at least 1 (got {options['limit']}).")
        try:
            with index_folder_errors(), progress_bar(total=None, desc="tagging", verbosity=options["verbosity"]) as bar:
                report = photos_retag(
                    force=options["force"],
                    limit=options["limit"],
                    batch_size=options["batch_size"],
                    decode_workers=options["decode_workers"],
                    progress=bar.update,
                )
        except RecognitionError as exc:  # a model not ready: nothing was tagged
            raise CommandError(exc.message) from None
        except BrokenProcessPool as exc:
            raise CommandError(
                f"A decoding process died ({exc}); out of memory? The photos tagged so far are stored and "
                "indexed: run retag again (with fewer --decode-workers) to take the rest."
            ) from exc
        done = report.tagged + report.failed
        rate = done / report.seconds if report.seconds else 0.0
        self.stdout.write(
            f"tagged {report.tagged} photos, {report.failed} failed, in {report.seconds:.1f}s "
            f"({rate:.1f} photos/s; the backbone waited {report.decode_wait_s:.1f}s for decoding)"
        )
