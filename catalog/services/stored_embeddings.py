"""What becomes of a tagged photo whose stored embedding cannot be read back (catalog.embedding_blobs).

One such row made every sync and every rebuild raise, so no photo tagged after it ever reached
search. Now its photo fails with the reason: the merchant sees it among the failed photos, "Retry
failed photos" tags it again, and the index is built from the others meanwhile.
"""

from __future__ import annotations

import logging

from catalog.models import Photo
from recognition.services import EMBEDDING_DIM

logger = logging.getLogger(__name__)

DAMAGED_EMBEDDING_REASON = (
    f"Its stored embedding cannot be read (not {EMBEDDING_DIM} finite numbers); retry the photo to tag it again."
)


def photos_fail_damaged_embeddings(photo_ids: list[int]) -> None:
    """Fail the tagged photos whose stored embedding cannot be read, so they leave the tagged set."""
    if not photo_ids:
        return
    logger.error("%d photo(s) have a damaged stored embedding and are failed: %s", len(photo_ids), photo_ids[:20])
    Photo.objects.filter(pk__in=photo_ids, status=Photo.Status.TAGGED).update(
        status=Photo.Status.FAILED, failure_reason=DAMAGED_EMBEDDING_REASON
    )
