"""Writes to items and photos; tagging is queued only once the write has committed."""

from __future__ import annotations

import logging
from collections.abc import Iterable

from celery import Task
from django.db import transaction
from kombu.exceptions import OperationalError as BrokerUnavailable

from catalog.models import Photo
from catalog.services.tagging import photo_tag_failed

logger = logging.getLogger(__name__)


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
    sender = _TaggingSender(tag_photo_task, force=force)
    for photo_id in ids:
        transaction.on_commit(lambda photo_id=photo_id: sender.send(photo_id))
    return len(ids)


class _TaggingSender:
    """Sends the tagging tasks of one call; with the broker unreachable, fails their photos instead.

    The save has committed by then: raised, the error answered the admin's save with a 500, and the
    photo waited as pending for good (nothing queues pending photos again). Failed with the reason, it
    shows in the admin, and "Retry failed photos" takes it once the broker is back. After one refusal
    the call's other photos fail at once, rather than each waiting on the broker again.
    """

    def __init__(self, task: Task, *, force: bool) -> None:
        self.task, self.force = task, force
        self.unreachable: str | None = None

    def send(self, photo_id: int) -> None:
        if self.unreachable is None:
            try:
                self.task.delay(photo_id, self.force)
                return
            except BrokerUnavailable as exc:
                self.unreachable = str(exc)
            except Exception as exc:
                if not self.task.app.conf.task_always_eager:
                    raise
                self._failed_in_process(photo_id, exc)
                return
        photo_tag_failed(
            photo_id=photo_id,
            reason=f"tagging could not be queued, the task broker is unreachable ({self.unreachable}); "
            "retry once it is back",
        )

    @staticmethod
    def _failed_in_process(photo_id: int, exc: Exception) -> None:
        """In-process tagging (the embedded defaults) ran the task here, and it raised.

        A worker would have retried it later; here the error (a `Retry` for a photo file not found)
        reached the caller: the import stopped half-way with a traceback, and the admin answered 500.
        The photo fails with the reason instead, and "Retry failed photos" tries it again; a tagged one
        keeps its tags and its place in search, as after a worker's last try.
        """
        cause = getattr(exc, "exc", None) or exc  # a Retry carries the error that caused it
        logger.warning("photo %s could not be tagged in process: %r", photo_id, cause, exc_info=exc)
        photo_tag_failed(photo_id=photo_id, reason=f"not tagged: {cause}; retry it once that is fixed")
