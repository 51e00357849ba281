"""Bring the vector index in step with the database (run before serving; cheap when it already is)."""

from __future__ import annotations

from catalog.management.index_folder import index_folder_errors
from catalog.services.index import index_repair
from fashion_search.commands import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Add tagged photos missing from the index, replace out-of-date vectors, drop ids no longer in "
        "the catalog, rebuild an unreadable index. Publishes nothing when the index already matches."
    )

    def handle(self, *args: object, **options: object) -> None:
        with index_folder_errors():
            repair = index_repair()
        if repair.rebuilding_elsewhere:
            self.stdout.write("another process is rebuilding the index; it is published when done")
        elif repair.syncing_elsewhere:
            self.stdout.write(
                "another process is updating the index (a sync or a compaction); it brings it in step when done"
            )
        elif repair.rebuilt:
            self.stdout.write(f"index was unreadable; rebuilt with {repair.added} photos")
        elif repair.changed:
            self.stdout.write(
                f"index repaired: {repair.added} photos added, {repair.replaced} out-of-date vectors replaced, "
                f"{repair.removed} removed"
            )
        else:
            self.stdout.write("index matches the catalog")
