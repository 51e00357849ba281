"""What happens to a shopper's photo after the search: by default nothing, it is never written anywhere.

With settings.KEEP_SHOPPER_UPLOADS on, the decoded photo is kept in SHOPPER_UPLOADS_DIR (outside
MEDIA_ROOT, so never served) as a freshly encoded JPEG: none of the uploaded bytes are kept, so neither
its metadata (a phone's GPS position) nor anything hidden in it survives.
"""

from __future__ import annotations

import logging
import uuid
from datetime import UTC, datetime
from pathlib import Path

from django.conf import settings
from PIL import Image

logger = logging.getLogger(__name__)

KEPT_JPEG_QUALITY = 90


def shopper_photo_keep(image: Image.Image) -> Path | None:
    """Keep the decoded RGB photo when settings say so; returns the file written, or None when off."""
    if not settings.KEEP_SHOPPER_UPLOADS:
        return None
    folder = Path(settings.SHOPPER_UPLOADS_DIR) / datetime.now(UTC).strftime("%Y/%m/%d")
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{uuid.uuid4().hex}.jpg"
    image.save(path, format="JPEG", quality=KEPT_JPEG_QUALITY)
    logger.info("kept shopper photo %s (%dx%d)", path.name, *image.size)
    return path
