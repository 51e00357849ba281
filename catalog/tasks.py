"""Celery tasks that write catalog rows: thin, idempotent, retried on transient failures."""

from __future__ import annotations

from celery import shared_task
from django.db import DatabaseError

from catalog.services.index import index_rebuild
from catalog.services.tagging import photo_tag

# Transient: database hiccups and I/O (a media volume briefly away). Corrupt photos are not
# transient; the service marks them failed instead of raising.
TRANSIENT_ERRORS = (DatabaseError, OSError)


@shared_task(
    acks_late=True,
    autoretry_for=TRANSIENT_ERRORS,
    retry_backoff=2,
    retry_backoff_max=120,
    retry_jitter=True,
    max_retries=6,
)
def tag_photo(photo_id: int, force: bool = False) -> None:
    photo_tag(photo_id=photo_id, force=force)


@shared_task(acks_late=True, autoretry_for=TRANSIENT_ERRORS, retry_backoff=5, max_retries=3)
def rebuild_index() -> None:
    index_rebuild()
