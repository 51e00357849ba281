"""Rebuild the vector index from the embeddings stored in the database."""

from __future__ import annotations

from django.conf import settings
from django.core.management.base import BaseCommand, CommandError

from catalog.models import Photo
from catalog.services.index import index_rebuild
from fashion_search.progress import progress_bar


class Command(BaseCommand):
    help = "Rebuild the FAISS index from every tagged photo's stored embedding (safe at any time)."

    def handle(self, *args: object, **options: object) -> None:
        total = Photo.objects.filter(status=Photo.Status.TAGGED).count()
        try:
            with progress_bar(total=total, desc="indexing", verbosity=options["verbosity"]) as bar:
                index = index_rebuild(progress=bar.update)
        except OSError as exc:  # INDEX_DIR is a file, or not writable, or the disk is full
            raise CommandError(
                f"The index folder {settings.INDEX_DIR} cannot be written: {exc.strerror or exc}."
            ) from None
        self.stdout.write(f"index rebuilt: {len(index)} photos, {index.kind} search")
