"""Evaluate a trained recognizer on a folder-per-label directory."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import CommandError, CommandParser

from fashion_search.commands import DatabaseCommand
from fashion_search.progress import progress_bar
from recognition.errors import RecognitionError
from recognition.services import backbone_get, head_live
from recognition.training import (
    embed_files,
    evaluate_head,
    format_report,
    load_dataset,
    targets_embedded,
)


class Command(DatabaseCommand):
    help = "Print top-1/2/3, per-class precision/recall and the confusion matrix of recognizer NAME on DIR."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="recognizer name, e.g. type")
        parser.add_argument("data", nargs="?", type=Path, help="folder with a sub-folder per label")
        parser.add_argument("--data", dest="data_option", type=Path, help="same as the positional DIR")
        parser.add_argument("--labels", type=Path, help="CSV labelling the photos under DIR (column NAME)")
        parser.add_argument("--json", action="store_true", help="print the results as JSON")

    def handle(self, *args: object, **options: object) -> None:
        if options["data_option"] and options["data"] and options["data_option"] != options["data"]:
            raise CommandError(f"Two folders given ({options['data']} and --data {options['data_option']}); give one.")
        data: Path | None = options["data_option"] or options["data"]
        if data is None:
            raise CommandError("Give the folder to evaluate on: evaluate_recognizer NAME --data DIR")
        try:
            head = head_live(options["name"])
            dataset = load_dataset(data, labels_csv=options["labels"], attribute=options["name"], labels=head.labels)
            with progress_bar(total=len(dataset.files), desc="evaluating", verbosity=options["verbosity"]) as bar:
                inputs, skipped = embed_files(
                    backbone_get(), dataset.files, progress=bar.update, features=head.features
                )
            results = evaluate_head(head, inputs, targets_embedded(dataset, skipped))
        except RecognitionError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(json.dumps(results, indent=2) if options["json"] else format_report(results))
