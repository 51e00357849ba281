"""What becomes of a tagged photo whose stored embedding cannot be read back (catalog.embedding_blobs).

One such row made every sync and every rebuild raise, so no photo tagged after it ever reached
search. Now its photo fails with the reason: the merchant sees it among the failed photos, "Retry
failed photos" tags it again, and the index is built from the others meanwhile.
"""

from __future__ import annotations

import logging
from datetime import datetime

from django.db import transaction

from catalog.models import Photo
from recognition.services import EMBEDDING_DIM

logger = logging.getLogger(__name__)

# Photos failed per query: one condition per photo (or one OR term each) past SQLite's limits raised
# "Expression tree is too large" where every embedding had gone bad at once.
PHOTOS_PER_UPDATE = 500
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
    for start in range(0, len(photos), PHOTOS_PER_UPDATE):
        read_at = dict(photos[start : start + PHOTOS_PER_UPDATE])
        with transaction.atomic():
            current = Photo.objects.select_for_update().filter(pk__in=read_at, status=Photo.Status.TAGGED)
            unchanged = [pk for pk, tagged_at in current.values_list("pk", "tagged_at") if tagged_at == read_at[pk]]
            Photo.objects.filter(pk__in=unchanged).update(
                status=Photo.Status.FAILED, failure_reason=DAMAGED_EMBEDDING_REASON
            )
