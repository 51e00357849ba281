"""A photo's stored embedding, read back from its bytes, or None when they are not a usable vector.

Every writer stores EMBEDDING_DIM float32 values, but a row written by another tool, cut short, or
left by a backbone of another size is not that; read blindly, it raised deep inside FAISS.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray

from recognition.services import EMBEDDING_DIM

EMBEDDING_BYTES = EMBEDDING_DIM * np.dtype(np.float32).itemsize


def embedding_from_blob(blob: bytes | memoryview) -> NDArray[np.float32] | None:
    """The stored embedding as a vector, or None when it is not EMBEDDING_DIM finite float32 values."""
    data = bytes(blob)
    if len(data) != EMBEDDING_BYTES:
        return None
    vector = np.frombuffer(data, dtype=np.float32)
    return vector if np.isfinite(vector).all() else None
