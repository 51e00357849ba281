"""Mark every photo's best tag per attribute again, for tags written outside the app (SQL, `loaddata`,
a worker of the previous version during an upgrade). The app's own writers keep the marks."""

from __future__ import annotations

from catalog.models import Photo
from catalog.services.best_tags import PHOTOS_PER_CHUNK, tags_best_mark
from fashion_search.commands import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Mark each photo's best tag per attribute (the one refine, text search and Complete the look "
        "read), for tags written outside the app. Prints how many marks changed."
    )

    def handle(self, *args: object, **options: object) -> None:
        photo_ids = list(Photo.objects.order_by("pk").values_list("pk", flat=True))
        changed = 0
        for start in range(0, len(photo_ids), PHOTOS_PER_CHUNK):
            changed += tags_best_mark(photo_ids=photo_ids[start : start + PHOTOS_PER_CHUNK])
            self.stderr.write(f"  {min(start + PHOTOS_PER_CHUNK, len(photo_ids)):,} of {len(photo_ids):,} photos")
        self.stdout.write(f"{len(photo_ids):,} photos checked; {changed:,} best-tag marks changed")
