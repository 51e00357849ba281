"""Print how the recognizers' answers hold up when photos are framed, relit, mirrored or compressed."""

from __future__ import annotations

from pathlib import Path

from django.core.management.base import CommandError, CommandParser

from fashion_search.commands import DatabaseCommand
from fashion_search.progress import progress_bar
from recognition.errors import RecognitionError
from recognition.robustness import photos_sample, robustness_evaluate, robustness_report


class Command(DatabaseCommand):
    help = (
        "Send PER_LABEL photos of each type folder under DIR through the upload path as they are and changed "
        "(framed, letterboxed, darker, brighter, warm light, mirrored, JPEG quality 15); print type top-1 and "
        "how often each attribute keeps the unchanged photo's answer."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("data", type=Path, help="folder with a sub-folder per type, e.g. a validation split")
        parser.add_argument("--per-label", type=int, default=6, help="photos drawn from each folder (default 6)")

    def handle(self, *args: object, **options: object) -> None:
        data: Path = options["data"]
        if not data.is_dir():
            raise CommandError(f"{data} is not a directory (give a folder with a sub-folder per type).")
        if options["per_label"] < 1:
            raise CommandError(f"--per-label must be at least 1 (got {options['per_label']}).")
        photos = photos_sample(data, per_label=options["per_label"])
        if not photos:
            raise CommandError(f"No photos found in sub-folders of {data}.")
        try:
            with progress_bar(total=len(photos), desc="evaluating", verbosity=options["verbosity"]) as bar:
                results = robustness_evaluate(photos, progress=bar.update)
        except RecognitionError as exc:
            raise CommandError(exc.message) from None
        self.stdout.write(robustness_report(results))
