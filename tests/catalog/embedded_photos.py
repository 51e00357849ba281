"""Catalog photos with a given embedding and no image decoding, for the search tests."""

from __future__ import annotations

import numpy as np

from catalog.models import Item, Photo


def unit(vector: np.ndarray) -> np.ndarray:
    return (vector / np.linalg.norm(vector)).astype(np.float32)


def embedded_photo(item: Item, vector: np.ndarray) -> Photo:
    """A tagged photo of `item` whose stored embedding is `vector` (L2-normalised by the caller)."""
    return Photo.objects.create(
        item=item, image="photos/x.jpg", status=Photo.Status.TAGGED, embedding=vector.tobytes(), embedding_model="x"
    )
