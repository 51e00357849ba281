"""Writes to items and photos; tagging is queued only once the write has committed."""

from __future__ import annotations

from collections.abc import Iterable

from django.db import transaction

from catalog.models import Photo


def photos_queue_tagging(*, photo_ids: Iterable[int], force: bool = False, image_changed: bool = False) -> int:
    """Queue a tagging task per photo after the current transaction commits; returns the count.

    Queued on commit so that a worker never looks for a row that is not yet visible to it. With
    `force`, photos not yet tagged become pending at once. A tagged photo stays searchable with its
    current tags until the new ones are stored (a bulk re-tag took its photos out of search for its
    whole run), unless `image_changed`: tags of an image no longer shown must not match searches.
    """
    from catalog.tasks import tag_photo as tag_photo_task

    ids = list(photo_ids)
    if force:
        pending = Photo.objects.filter(pk__in=ids)
        if not image_changed:
            pending = pending.exclude(status=Photo.Status.TAGGED)
        pending.update(status=Photo.Status.PENDING, failure_reason="")
    for photo_id in ids:
        transaction.on_commit(lambda photo_id=photo_id: tag_photo_task.delay(photo_id, force))
    return len(ids)
