"""Writes to items and photos; tagging is queued only once the write has committed."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from catalog.models import Photo


def photos_queue_tagging(*, photo_ids: Iterable[int], force: bool = False) -> int:
    """Queue a tagging task per photo after the current transaction commits; returns the count.

    Queued on commit so that a worker never looks for a row that is not yet visible to it.
    """
    from catalog.tasks import tag_photo as tag_photo_task

    ids = list(photo_ids)
    if force:
        Photo.objects.filter(pk__in=ids).update(status=Photo.Status.PENDING, failure_reason="")
    for photo_id in ids:
        transaction.on_commit(lambda photo_id=photo_id: tag_photo_task.delay(photo_id, force))
    return len(ids)
