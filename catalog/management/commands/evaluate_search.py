"""Measure retrieval quality: photos of one folder-per-type directory query a catalog built from another."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import CommandError, CommandParser

from catalog.services.evaluation import format_retrieval_report, photos_embed, retrieval_evaluate
from catalog.services.ranking import RankingWeights
from fashion_search.commands import DatabaseCommand
from fashion_search.progress import progress_bar
from recognition.errors import RecognitionError
from recognition.training import load_folder_dataset


class Command(DatabaseCommand):
    help = (
        "Print precision@1, precision@10 and mAP@10 of type agreement, embedding-only and hybrid. "
        "DIR/validation queries DIR/train by default; --queries and --catalog name other folders."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=Path, help="folder holding the query and catalog folders")
        parser.add_argument("--queries", default="validation", help="query folder (relative to DIR, or a path)")
        parser.add_argument("--catalog", default="train", help="catalog folder (relative to DIR, or a path)")
        parser.add_argument("--json", action="store_true", help="print the results as JSON")

    def handle(self, *args: object, **options: object) -> None:
        root: Path = options["directory"]
        queries_dir, catalog_dir = root / options["queries"], root / options["catalog"]
        try:
            total = sum(len(load_folder_dataset(d).files) for d in (queries_dir, catalog_dir))
            with progress_bar(total=total, desc="embedding", verbosity=options["verbosity"]) as bar:
                catalog = photos_embed(catalog_dir, progress=bar.update)
                queries = photos_embed(queries_dir, progress=bar.update)
        except RecognitionError as exc:
            raise CommandError(exc.message) from None
        for folder, photos in ((queries_dir, queries), (catalog_dir, catalog)):
            if photos.unreadable:
                shown = ", ".join(str(path.relative_to(folder)) for path in photos.unreadable[:10])
                more = " ..." if len(photos.unreadable) > 10 else ""
                self.stderr.write(f"left out {len(photos.unreadable)} unreadable photo(s) of {folder}: {shown}{more}")
        results = retrieval_evaluate(queries, catalog, weights=RankingWeights.from_settings())
        self.stdout.write(json.dumps(results, indent=2) if options["json"] else format_retrieval_report(results))
