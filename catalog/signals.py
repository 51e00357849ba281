"""Keep the index in step with deletions: a deleted photo leaves the index once its transaction commits.

Deletion never waits on the index's writer lock: it queues the coalesced `sync_index` task, which
drops every id no longer tagged (catalog.services.index.index_sync). With eager tasks (development,
tests) that runs at once on commit; with workers, within moments. Search already hides deleted
photos before then (catalog.services.search reads the rows).
"""

from __future__ import annotations

from django.db import transaction
from django.db.models.signals import post_delete
from django.dispatch import receiver

from catalog.models import Photo


class SyncIndexOnCommit:
    """The on-commit callback that queues `sync_index`; remembers having run, for `photo_deleted`."""

    def __init__(self) -> None:
        self.ran = False

    def __call__(self) -> None:
        from catalog.tasks import sync_index as sync_index_task

        self.ran = True
        sync_index_task.delay()


@receiver(post_delete, sender=Photo)
def photo_deleted(sender: type[Photo], instance: Photo, using: str, **kwargs: object) -> None:
    connection = transaction.get_connection(using)
    # One sync serves every deletion of a transaction (an item's photos, an admin bulk delete), and each
    # sync reads the whole index, so queue it once. `run_on_commit` holds the callbacks still pending
    # (a rolled-back savepoint's are dropped); Django's test helper runs them without removing them.
    if connection.in_atomic_block and any(
        isinstance(entry[1], SyncIndexOnCommit) and not entry[1].ran for entry in connection.run_on_commit
    ):
        return
    transaction.on_commit(SyncIndexOnCommit(), using=using)
