"""Celery tasks that write catalog rows: thin, idempotent, retried on transient failures.

Crash safety comes from the settings (late acks, reject on worker lost, prefetch 1, a broker
visibility timeout): a task whose worker dies is delivered again, and since every task is
idempotent a second delivery does no harm. See tests/e2e/test_worker_crash.py.
"""

from __future__ import annotations

from celery import Task, shared_task
from django.conf import settings
from django.db import DatabaseError

from catalog.models import Photo
from catalog.services.index import (
    index_compact,
    index_photo_ensure,
    index_rebuild,
    index_repair,
    index_sync_queued_run,
)
from catalog.services.tagging import photo_tag, photo_tag_failed

# Transient: database hiccups and I/O (a media volume briefly away). Corrupt photos are not
# transient; the service marks them failed instead of raising.
TRANSIENT_ERRORS = (DatabaseError, OSError)
# Rebuilding a whole HNSW graph outlasts CELERY_TASK_TIME_LIMIT at a large catalog (333 s at 1M on 2
# cores): these tasks get their own limit (fashion_search/settings.py, INDEX_REBUILD_TIME_LIMIT).
# They acknowledge on receipt, not late: a late-acked message still unacknowledged after the broker's
# visibility timeout (600 s) is handed to a second worker while the first still builds. A lost
# compaction only waits for the next sync to queue it again; a lost rebuild is rerun by hand.
INDEX_REBUILD_LIMITS = {
    "acks_late": False,
    "time_limit": settings.INDEX_REBUILD_TIME_LIMIT,
    "soft_time_limit": int(settings.INDEX_REBUILD_TIME_LIMIT * 0.9),
}


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=6,
)
def tag_photo(self: Task, photo_id: int, force: bool = False) -> None:
    # Its index sync goes to the queue this task came from, which the same workers consume.
    queue = (self.request.delivery_info or {}).get("routing_key")
    # A worker killed after committing the tags but before the index sync, or a try that failed after
    # its commit, leaves the photo tagged yet perhaps unindexed; the next delivery or try then skips
    # tagging, so it checks the index. Told by the row's own tagging time, as it was before this try.
    again = (self.request.delivery_info or {}).get("redelivered", False) or self.request.retries > 0
    tagged_at_before = Photo.objects.filter(pk=photo_id).values_list("tagged_at", flat=True).first() if again else None
    try:
        photo = photo_tag(photo_id=photo_id, force=force, index_queue=queue)
    except TRANSIENT_ERRORS as exc:
        if self.request.retries >= self.max_retries:  # the last try: no retry follows to tag it
            photo_tag_failed(photo_id=photo_id, reason=f"not tagged after {self.max_retries + 1} tries: {exc}")
        raise
    if again and photo is not None and photo.status == Photo.Status.TAGGED and photo.tagged_at == tagged_at_before:
        index_photo_ensure(photo=photo)  # skipped here: an earlier try or delivery tagged it


@shared_task(
    bind=True,
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=6,
)
def sync_index(self: Task) -> None:
    """Bring the index in step with the catalog (queued after taggings and deletions); coalesces, idempotent."""
    index_sync_queued_run(queue=(self.request.delivery_info or {}).get("routing_key"))


@shared_task(autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, max_retries=3, **INDEX_REBUILD_LIMITS)
def compact_index() -> None:
    """Fold the delta into a new base and rebuild the HNSW graph without its tombstones, each when due
    (queued by a sync that finds either due)."""
    index_compact()


@shared_task(autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, max_retries=3, **INDEX_REBUILD_LIMITS)
def rebuild_index() -> None:
    index_rebuild()


@shared_task(autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, max_retries=3, **INDEX_REBUILD_LIMITS)
def repair_index() -> None:
    """Rebuild an index a sync found unreadable (queued by that sync); does nothing once the index matches."""
    index_repair()
