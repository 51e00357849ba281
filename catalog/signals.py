"""Keep the index in step with deletions: a deleted photo leaves results as soon as it commits."""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from catalog.models import Photo


@receiver(post_delete, sender=Photo)
def photo_deleted(sender: type[Photo], instance: Photo, **kwargs: object) -> None:
    from catalog.services.index import index_remove_photos

    photo_id = instance.pk
    transaction.on_commit(lambda: index_remove_photos(photo_ids=[photo_id]))
