"""Keep the index and the media folder in step with deletions, once their transaction commits.

A deleted photo's file, and the file an image replaced, are deleted too (`photo_file_forget`): left
on disk they stayed served under /media/ for good.

Deletion never waits on the index's writer lock: it queues the coalesced `sync_index` task, which
drops every id no longer tagged (catalog.services.index.index_sync). With eager tasks (development,
tests) that runs at once on commit; with workers, within moments. Search already hides deleted
photos before then (catalog.services.search reads the rows).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import TypeVar

from django.db import DatabaseError, transaction
from django.db.models.signals import post_delete, pre_save
from django.dispatch import receiver
from kombu.exceptions import OperationalError as BrokerUnavailable

from catalog.models import DeletedImport, Item, Photo
from recognition.errors import RecognitionError

logger = logging.getLogger(__name__)

T = TypeVar("T")


class SyncIndexOnCommit:
    """The on-commit callback that queues `sync_index`; remembers having run, for `on_commit_once`."""

    def __init__(self) -> None:
        self.ran = False

    def __call__(self) -> None:
        from catalog.services.index import index_sync
        from catalog.tasks import sync_index as sync_index_task

        self.ran = True
        try:
            sync_index_task.delay()
        except BrokerUnavailable as exc:
            # The deletion has committed. Raised, this answered it with a 500 and skipped the callbacks
            # after it (the photo's file stayed on disk, served). Synced here instead: search hides
            # deleted photos meanwhile anyway, and a sync that fails too is left to the next one.
            logger.warning("could not queue an index sync after a deletion (%s); syncing now instead", exc)
            try:
                index_sync()
            except (RecognitionError, DatabaseError, OSError):
                logger.exception("could not sync the index after a deletion either")


def on_commit_once(kind: type[T], make: Callable[[], T], *, using: str) -> T:
    """The callback of `kind` this transaction will run on commit, registered by `make` if none is yet.

    One callback serves every deletion of a transaction (an item's photos, an admin bulk delete).
    `run_on_commit` holds the callbacks still pending (a rolled-back savepoint's are dropped); Django's
    test helper runs them without removing them, hence their `ran`.
    """
    connection = transaction.get_connection(using)
    if connection.in_atomic_block:
        for entry in connection.run_on_commit:
            if isinstance(entry[1], kind) and not entry[1].ran:
                return entry[1]
    callback = make()
    transaction.on_commit(callback, using=using)
    return callback


@receiver(post_delete, sender=Photo)
def photo_deleted(sender: type[Photo], instance: Photo, using: str, **kwargs: object) -> None:
    # Each sync reads the whole index, so a transaction queues one.
    on_commit_once(SyncIndexOnCommit, SyncIndexOnCommit, using=using)


@receiver(post_delete, sender=Photo)
def photo_file_deleted(sender: type[Photo], instance: Photo, using: str, **kwargs: object) -> None:
    if instance.image.name:
        photo_file_forget(instance.image.name, using=using)


@receiver(pre_save, sender=Photo)
def photo_image_replaced(
    sender: type[Photo], instance: Photo, using: str, update_fields: frozenset[str] | None = None, **kwargs: object
) -> None:
    # A save of named fields without the image (tagging stores its results so) cannot replace it: no query.
    if instance.pk is None or (update_fields is not None and "image" not in update_fields):
        return
    before = Photo.objects.using(using).filter(pk=instance.pk).values_list("image", flat=True).first()
    if before and before != instance.image.name:
        photo_file_forget(before, using=using)


class FilesForgetOnCommit:
    """The on-commit callback that deletes a transaction's forgotten photo files, all in one go."""

    def __init__(self, using: str) -> None:
        self.using = using
        self.names: set[str] = set()
        self.ran = False

    def __call__(self) -> None:
        self.ran = True
        # One query for them all (a bulk delete of many items): the image column has no index.
        named = set(Photo.objects.using(self.using).filter(image__in=self.names).values_list("image", flat=True))
        storage = Photo._meta.get_field("image").storage
        for name in self.names - named:
            storage.delete(name)


def photo_file_forget(name: str, *, using: str) -> None:
    """Delete a photo file once the transaction commits (a rolled-back deletion keeps it), unless another
    photo still names it (photos may share a file: bench catalogs point every photo at one)."""
    on_commit_once(FilesForgetOnCommit, lambda: FilesForgetOnCommit(using), using=using).names.add(name)


@receiver(post_delete, sender=Item)
def item_deleted(sender: type[Item], instance: Item, using: str, **kwargs: object) -> None:
    """Remember an imported item's deletion, so that importing its folder again leaves it out."""
    if instance.import_key:
        DeletedImport.objects.using(using).get_or_create(
            import_source=instance.import_source, import_key=instance.import_key
        )
