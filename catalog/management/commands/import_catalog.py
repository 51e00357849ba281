"""Import a folder of images (a sub-folder per type, optional CSV of details) into the catalog."""

from __future__ import annotations

from argparse import ArgumentTypeError
from pathlib import Path

from django.core.management.base import CommandError, CommandParser

from catalog.errors import CatalogError
from catalog.services.import_folder import import_files_list
from catalog.services.importing import catalog_import
from fashion_search.broker import broker_unreachable
from fashion_search.commands import DatabaseCommand
from fashion_search.progress import progress_bar
from recognition.labels import TYPE


def _folder(text: str) -> Path:
    """An empty argument would mean the current folder (Path("") is "."); a typo should not import it."""
    if not text.strip():
        raise ArgumentTypeError("the folder to import is empty; give its path (. for the current folder)")
    return Path(text)


class Command(DatabaseCommand):
    help = (
        "Import DIR (a sub-folder per type) into the catalog. Running it again adds new images and applies "
        "the CSV values changed since the last import; it never duplicates items nor undoes edits made in the admin."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument("directory", type=_folder)
        parser.add_argument(
            "--csv", type=Path, help="UTF-8 CSV with columns file,name,brand,price,currency,shop_url,description",
        )
        parser.add_argument("--dry-run", action="store_true", help="report what would change, write nothing")
        parser.add_argument("--limit", type=int, help="import at most this many images")
        parser.add_argument(
            "--source",
            help="the name this folder's items are kept under (default: the folder's name); give each supplier "
            "its own, and the same one when you rerun a folder you renamed or moved",
        )
        parser.add_argument(
            "--restore-deleted", action="store_true",
            help="import again the images whose items were deleted in the admin (left out otherwise)",
        )

    def handle(self, *args: object, **options: object) -> None:
        if options["limit"] is not None and options["limit"] < 1:
            raise CommandError(f"--limit must be at least 1 (got {options['limit']}).")
        if not options["dry_run"] and (unreachable := broker_unreachable()):
            # Checked first: each new photo queues its tagging, and one that cannot be queued is failed.
            raise CommandError(f"{unreachable}; nothing was imported. Run the import again once it is back.")
        try:
            every_file = len(import_files_list(options["directory"]))
            total = min(every_file, options["limit"] or every_file)
            with progress_bar(total=total, desc="importing", verbosity=options["verbosity"]) as bar:
                report = catalog_import(
                    root=options["directory"],
                    csv_path=options["csv"],
                    dry_run=options["dry_run"],
                    limit=options["limit"],
                    restore_deleted=options["restore_deleted"],
                    source=options["source"],
                    progress=bar.update,
                )
        except CatalogError as exc:
            raise CommandError(exc.message) from None
        prefix = "would import" if options["dry_run"] else "imported"
        self.stdout.write(
            f"{prefix}: {report.created} created, {report.updated} updated, "
            f"{report.unchanged} unchanged, {len(report.skipped)} skipped (source {report.source!r})"
        )
        if report.source_folder_before:
            self.stdout.write(
                f"source {report.source!r} was recorded at {report.source_folder_before}; it is now this folder"
            )
        if total < every_file:
            self.stdout.write(
                f"--limit {options['limit']}: the first {total} of {every_file} images (sorted by path) were "
                f"looked at, the other {every_file - total} not"
            )
        for other, paths in report.paths_of_other_sources.items():
            shown = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
            self.stdout.write(
                f"{len(paths)} new item(s) have the same paths as items of source {other!r}, which were left as "
                f"they are: {shown}. If this folder is {other!r} renamed or moved, delete the new items and "
                f"import it with --source {other!r}."
            )
        for relative, reason in report.skipped:
            self.stderr.write(f"skipped {relative}: {reason}")
        if report.folders_not_types:
            self.stdout.write(
                f"folder(s) {', '.join(map(repr, report.folders_not_types))} name no type, so their new items get "
                f"no hand-set type (the model's is used); types: {', '.join(TYPE.labels)}"
            )
        if report.moved:
            shown = ", ".join(f"{old} -> {new}" for old, new in report.moved[:5]) + (
                " ..." if len(report.moved) > 5 else ""
            )
            self.stdout.write(f"{len(report.moved)} item(s) follow their file, moved or renamed: {shown}")
        for why, paths in report.passed_over.items():
            shown = ", ".join(paths[:5]) + (" ..." if len(paths) > 5 else "")
            self.stderr.write(f"{len(paths)} file(s) passed over, as they {why}: {shown}")
        if report.deleted_left_out:
            shown = ", ".join(report.deleted_left_out[:10]) + (" ..." if len(report.deleted_left_out) > 10 else "")
            self.stdout.write(
                f"{len(report.deleted_left_out)} image(s) left out: their items were deleted in the admin "
                f"(--restore-deleted imports them again): {shown}"
            )
        if report.rows_unused:
            shown = ", ".join(report.rows_unused[:10]) + (" ..." if len(report.rows_unused) > 10 else "")
            self.stderr.write(
                f"{len(report.rows_unused)} CSV row(s) name no image under {options['directory']} and were "
                f"not used (file paths are relative to the folder, with / and the exact case): {shown}"
            )
