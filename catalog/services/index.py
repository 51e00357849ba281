"""Keep the vector index in step with the catalog's stored embeddings."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable

import numpy as np
from django.conf import settings

from catalog.models import Photo
from recognition.index import VectorIndex
from recognition.services import index_store_get

logger = logging.getLogger(__name__)

# Embeddings read per query during a rebuild: 2,000 x 5 KB = 10 MB per batch.
REBUILD_BATCH_PHOTOS = 2000


def index_add_photo(*, photo: Photo) -> None:
    """Upsert one tagged photo's embedding into the published index."""
    vector = photo.embedding_vector()
    if vector is None:
        return
    with index_store_get().editing() as index:
        index.add(np.array([photo.pk], dtype=np.int64), vector.reshape(1, -1))


def index_remove_photos(*, photo_ids: list[int]) -> None:
    """Drop photos from the published index (ids not in it are ignored)."""
    with index_store_get().editing() as index:
        removed = index.remove(np.array(photo_ids, dtype=np.int64))
    logger.info("removed %d of %d photos from the index", removed, len(photo_ids))


def index_rebuild(*, progress: Callable[[int], None] | None = None) -> VectorIndex:
    """Rebuild the index from every tagged photo's stored embedding and publish it.

    Safe to run at any time: the new index replaces the old one in a single rename.
    """
    started = time.perf_counter()
    queryset = Photo.objects.filter(status=Photo.Status.TAGGED, embedding__isnull=False).order_by("pk")
    ids: list[int] = []
    vectors: list[np.ndarray] = []
    for photo_id, blob in queryset.values_list("pk", "embedding").iterator(chunk_size=REBUILD_BATCH_PHOTOS):
        ids.append(photo_id)
        vectors.append(np.frombuffer(bytes(blob), dtype=np.float32))
        if progress:
            progress(1)
    store = index_store_get()
    matrix = np.vstack(vectors) if vectors else np.zeros((0, store.dim), np.float32)
    index = VectorIndex.build(
        np.array(ids, dtype=np.int64), matrix, flat_max_items=settings.FLAT_INDEX_MAX_ITEMS
    )
    store.replace(index)
    logger.info("rebuilt index: %d photos, %s, %.2fs", len(ids), index.kind, time.perf_counter() - started)
    return index


def index_matches_catalog() -> bool:
    """Whether the published index holds exactly the tagged photos of the database."""
    indexed = set(index_store_get().load().ids().tolist())
    tagged = set(
        Photo.objects.filter(status=Photo.Status.TAGGED, embedding__isnull=False).values_list("pk", flat=True)
    )
    return indexed == tagged
