"""Rebuild the vector index from the embeddings stored in the database."""

from __future__ import annotations

from catalog.management.index_folder import index_folder_errors
from catalog.models import Photo
from catalog.services.index import index_rebuild
from fashion_search.commands import DatabaseCommand
from fashion_search.progress import progress_bar


class Command(DatabaseCommand):
    help = "Rebuild the FAISS index from every tagged photo's stored embedding (safe at any time)."

    def handle(self, *args: object, **options: object) -> None:
        total = Photo.objects.filter(status=Photo.Status.TAGGED).count()
        with index_folder_errors(), progress_bar(total=total, desc="indexing", verbosity=options["verbosity"]) as bar:
            index = index_rebuild(progress=bar.update)
        self.stdout.write(f"index rebuilt: {len(index)} photos, {index.kind} search")
