"""What happens to a shopper's photo after the search: by default nothing, it is never written anywhere.

With settings.KEEP_SHOPPER_UPLOADS on, the decoded photo is kept in SHOPPER_UPLOADS_DIR (outside
MEDIA_ROOT, so never served) as a freshly encoded JPEG: none of the uploaded bytes are kept, so neither
its metadata (a phone's GPS position) nor anything hidden in it survives.
"""

from __future__ import annotations

import contextlib
import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from PIL import Image

logger = logging.getLogger(__name__)

KEPT_JPEG_QUALITY = 90


def shopper_photo_keep(image: Image.Image) -> Path | None:
    """Keep the decoded RGB photo when settings say so; returns the file written, or None when off.

    The search does not depend on it: a photo that cannot be written (a full disk) is logged and the
    shopper still gets the results.
    """
    if not settings.KEEP_SHOPPER_UPLOADS:
        return None
    # The pixels alone: Pillow carries the upload's text (a JPEG or GIF comment) in `info`, and its
    # JPEG writer would write a comment found there into the kept file.
    pixels = image.copy()
    pixels.info = {}
    folder = Path(settings.SHOPPER_UPLOADS_DIR) / datetime.now(UTC).strftime("%Y/%m/%d")
    path = folder / f"{uuid.uuid4().hex}.jpg"
    try:
        folder.mkdir(parents=True, exist_ok=True)
        pixels.save(path, format="JPEG", quality=KEPT_JPEG_QUALITY)
    except OSError as exc:
        logger.error("shopper photo not kept in %s: %s", folder, exc)
        with contextlib.suppress(OSError):  # a part written before the disk filled up
            path.unlink(missing_ok=True)
        return None
    logger.info("kept shopper photo %s (%dx%d)", path.name, *image.size)
    return path
