"""A photo preparer whose worker process dies on one marked photo (tests/catalog/test_retag.py)."""

from __future__ import annotations

import os
from dataclasses import dataclass

from recognition.embed_pipeline import PhotoPreparer, Prepared

MARK = b"kill the decoding process"


@dataclass(frozen=True)
class DyingPreparer(PhotoPreparer):
    def __call__(self, data: bytes) -> Prepared:
        if data.startswith(MARK):
            os._exit(1)  # as the kernel's out-of-memory killer would end it
        return super().__call__(data)
