"""Train a recognizer head from a folder-per-label directory and save it with its metrics."""

from __future__ import annotations

import json
from pathlib import Path

from django.core.management.base import BaseCommand, CommandError, CommandParser

from fashion_search.progress import progress_bar
from recognition.errors import RecognitionError
from recognition.labels import LABEL_SETS
from recognition.recognizers import BUILTIN_ARTIFACTS_DIR, save_head
from recognition.services import backbone_get
from recognition.training import (
    embed_files,
    evaluate_head,
    format_report,
    load_folder_dataset,
    targets_embedded,
    train_head,
)


class Command(BaseCommand):
    help = "Train recognizer NAME on DIR (one sub-folder per label); evaluate on --eval-data if given."

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("name", help="recognizer name, e.g. type")
        parser.add_argument("--data", type=Path, required=True, help="training folder, a sub-folder per label")
        parser.add_argument("--eval-data", type=Path, help="held-out folder to evaluate on")
        parser.add_argument("--output", type=Path, help="where to save (default: the built-in artifacts)")

    def handle(self, *args: object, **options: object) -> None:
        name: str = options["name"]
        verbosity: int = options["verbosity"]
        output: Path = options["output"] or BUILTIN_ARTIFACTS_DIR / name
        label_set = LABEL_SETS.get(name)
        try:
            dataset = load_folder_dataset(options["data"], label_set.labels if label_set else None)
            backbone = backbone_get()
            with progress_bar(total=len(dataset.files), desc="embedding", verbosity=verbosity) as bar:
                embeddings, skipped = embed_files(backbone, dataset.files, progress=bar.update)
            targets = targets_embedded(dataset, skipped)
            head = train_head(name, embeddings, targets, dataset.labels, backbone_version=backbone.version)
            metrics: dict = {"train_samples": int(len(targets)), "train_dir": str(options["data"])}
            if options["eval_data"]:
                held_out = load_folder_dataset(options["eval_data"], dataset.labels)
                with progress_bar(total=len(held_out.files), desc="evaluating", verbosity=verbosity) as bar:
                    eval_embeddings, eval_skipped = embed_files(backbone, held_out.files, progress=bar.update)
                results = evaluate_head(head, eval_embeddings, targets_embedded(held_out, eval_skipped))
                metrics |= {"eval_dir": str(options["eval_data"]), "evaluation": results}
                self.stdout.write(format_report(results))
        except RecognitionError as exc:
            raise CommandError(exc.message) from None
        save_head(head, output, metrics)
        self.stdout.write(f"saved {name} ({len(dataset.labels)} labels, {len(targets)} photos) to {output}")
        if skipped:
            self.stderr.write(f"skipped {len(skipped)} unreadable files: {json.dumps([str(p) for p in skipped])}")

