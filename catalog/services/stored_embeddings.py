"""What becomes of a tagged photo whose stored embedding cannot be read back (catalog.embedding_blobs).

One such row made every sync and every rebuild raise, so no photo tagged after it ever reached
search. Now its photo fails with the reason: the merchant sees it among the failed photos, "Retry
failed photos" tags it again, and the index is built from the others meanwhile.
"""

from __future__ import annotations

import logging
from datetime import datetime
from functools import reduce
from operator import or_

from django.db.models import Q

from catalog.models import Photo
from recognition.services import EMBEDDING_DIM

logger = logging.getLogger(__name__)

DAMAGED_EMBEDDING_REASON = (
    f"Its stored embedding cannot be read (not {EMBEDDING_DIM} finite numbers); retry the photo to tag it again."
)


def photos_fail_damaged_embeddings(photos: list[tuple[int, datetime | None]]) -> None:
    """Fail the tagged photos whose stored embedding cannot be read, so they leave the tagged set.

    `photos` are (id, tagged_at) as read with the embedding: a photo tagged again since keeps its new one.
    """
    if not photos:
        return
    logger.error("%d photo(s) have a damaged stored embedding and are failed: %s", len(photos), photos[:20])
    as_read = reduce(or_, (Q(pk=photo_id, tagged_at=tagged_at) for photo_id, tagged_at in photos))
    Photo.objects.filter(as_read, status=Photo.Status.TAGGED).update(
        status=Photo.Status.FAILED, failure_reason=DAMAGED_EMBEDDING_REASON
    )
