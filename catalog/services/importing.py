"""Import a folder of images (a sub-folder per type) into the catalog; safe to run again.

Each image becomes an item keyed by its source (the folder's name, or `--source`) and its path relative
to the folder, so a second run never duplicates, and two suppliers' folders with the same paths never
overwrite each other. A file moved or renamed in the folder takes its item along (by its SHA-256).
A new item gets the sub-folder's name as its photo's hand-set type. An optional CSV (columns: file,
name, brand, price, currency, shop_url, description; UTF-8) fills the item's details; `file` is the
same relative path.

A rerun never undoes a merchant's edits: an existing item only takes the CSV values that are present
(non-empty) and changed in the CSV since the import that last ran (`Item.imported_details`), and its
tags are left alone. So an unchanged CSV leaves an item edited in the admin as the merchant left it,
and a price changed in the CSV reaches the item. Without a CSV row an existing item is not touched.
Images follow the same rule (`Item.imported_image_sha256`): a file changed in the folder since the
import that last ran replaces the item's photo, which is tagged again; a photo replaced in the admin
stays while the folder's file does not change.

The CSV is read and checked in catalog/services/import_csv.py, the folder in import_folder.py.
"""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal
from pathlib import Path

from django.core.files import File
from django.db import transaction
from django.db.models import QuerySet

from catalog.errors import ImportSourceInvalid
from catalog.models import DeletedImport, Item, Photo, Tag
from catalog.services.best_tags import tags_best_mark
from catalog.services.import_csv import ItemDetails, import_details_read
from catalog.services.import_folder import import_files_list, import_files_passed_over, name_printable
from catalog.services.import_sources import import_source_record, import_source_resolve
from catalog.services.items import photos_queue_tagging
from catalog.services.tagging import photo_tag_set_by_hand
from recognition.errors import ImageTooLarge, InvalidImage
from recognition.images import decode_image
from recognition.labels import TYPE

logger = logging.getLogger(__name__)

IMPORT_MAX_BYTES = 50 * 1024 * 1024
IMPORT_MAX_PIXELS = 80_000_000
DEFAULT_CURRENCY = "EUR"
PRICE_STEP = Decimal("0.01")  # Item.price has 2 decimal places
NAME_MAX_CHARS = Item._meta.get_field("name").max_length
IMPORT_KEY_MAX_CHARS = Item._meta.get_field("import_key").max_length
LEGACY_SOURCE = ""  # items imported before sources were recorded


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)
    # CSV rows whose `file` names no image under the folder (a typo, another case, a moved file).
    rows_unused: list[str] = field(default_factory=list)
    # Images whose items a merchant deleted (DeletedImport), left out unless restored.
    deleted_left_out: list[str] = field(default_factory=list)
    # Sub-folders whose name is no type label ("Dress", "tshirts") and that gave new items: none of those
    # gets a hand-set type.
    folders_not_types: list[str] = field(default_factory=list)
    # Items whose file was moved or renamed in the folder: (old path, new path).
    moved: list[tuple[str, str]] = field(default_factory=list)
    # Files under the folder that the import does not take, by why (`import_files_passed_over`).
    passed_over: dict[str, list[str]] = field(default_factory=dict)
    # The source the items were imported under (catalog/services/import_sources.py), and the folder it
    # was recorded at before, where that is another one (moved, or named with --source).
    source: str = ""
    source_folder_before: str = ""
    # New items whose path another source's items have too: a second supplier, or this folder renamed.
    paths_of_other_sources: dict[str, list[str]] = field(default_factory=dict)  # other source -> paths


def catalog_import(
    *,
    root: Path,
    csv_path: Path | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    restore_deleted: bool = False,
    source: str | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Create an item per new image and apply changed CSV details to existing ones.

    Unreadable images and files whose CSV row has a bad value are skipped and reported; so are images
    whose items were deleted in the admin, unless `restore_deleted`. A dry run counts exactly what a
    real run would do and writes nothing.
    """
    every_file = import_files_list(root)
    resolved = import_source_resolve(root, source, every_file)
    source = resolved.name
    files = every_file[:limit]
    details = import_details_read(csv_path)
    if not dry_run:  # the folder and CSV are read: from here on, items may be made under this source
        import_source_record(resolved)
    report = ImportReport(
        source=source, source_folder_before=resolved.recorded_folder, passed_over=import_files_passed_over(root)
    )
    present = {path.relative_to(root).as_posix() for path in every_file}
    report.rows_unused = [name for name in details if name not in present]
    for path in files:
        relative = path.relative_to(root).as_posix()
        row = details.get(relative, ItemDetails({}))
        try:
            if row.error:
                raise ImportSourceInvalid(row.error)
            _import_one(
                path=path, key=ImportKey(source, relative), details=row.values, dry_run=dry_run,
                restore_deleted=restore_deleted, report=report, present=present,
            )
        except (ImportSourceInvalid, InvalidImage, ImageTooLarge, OSError) as exc:
            shown = name_printable(relative)
            report.skipped.append((shown, getattr(exc, "message", str(exc))))
            logger.debug("skipped %s: %s", shown, exc)  # the report lists it; the caller says so once
        if progress:
            progress(1)
    return report


@dataclass(frozen=True)
class ImportKey:
    """What names an imported item: its source and its image's path in the source's folder."""

    source: str
    relative: str

    def item(self) -> Item | None:
        """The item of this key; one imported before sources were recorded is adopted by this source."""
        item = Item.objects.filter(import_source=self.source, import_key=self.relative).first()
        if item is None:
            item = Item.objects.filter(import_source=LEGACY_SOURCE, import_key=self.relative).first()
        return item

    def deletions(self) -> QuerySet[DeletedImport]:
        """The records of this key's item deleted in the admin (one from before sources counts too)."""
        return DeletedImport.objects.filter(import_source__in=[self.source, LEGACY_SOURCE], import_key=self.relative)

    def moved_item(self, digest: str, present: set[str]) -> Item | None:
        """This source's item whose file, with these very bytes, is no longer where it was: the file was
        moved or renamed to this path. Without this, the move made a second item and left the first."""
        candidates = Item.objects.filter(
            import_source__in=[self.source, LEGACY_SOURCE], imported_image_sha256=digest, import_key__isnull=False
        )
        return next((item for item in candidates if item.import_key not in present), None)

    def sources_elsewhere(self) -> list[str]:
        """Other sources with an item of the same path."""
        return list(
            Item.objects.filter(import_key=self.relative)
            .exclude(import_source__in=[self.source, LEGACY_SOURCE])
            .values_list("import_source", flat=True)
        )


def _import_one(
    *,
    path: Path,
    key: ImportKey,
    details: dict[str, object],
    dry_run: bool,
    restore_deleted: bool,
    report: ImportReport,
    present: set[str],
) -> None:
    relative = key.relative
    if relative != name_printable(relative):
        # Python carries the bytes of a name that is not UTF-8 (an old zip, a Windows share) as lone
        # surrogates, which neither the database nor the storage can write.
        raise ImportSourceInvalid("its name is not valid UTF-8; rename it (for example with `convmv`).")
    if len(relative) > IMPORT_KEY_MAX_CHARS:
        raise ImportSourceInvalid(f"its path is {len(relative)} characters long; at most {IMPORT_KEY_MAX_CHARS} fit.")
    data = path.read_bytes()
    decode_image(data, max_bytes=IMPORT_MAX_BYTES, max_pixels=IMPORT_MAX_PIXELS)  # refuse unreadable files
    digest = hashlib.sha256(data).hexdigest()
    existing = key.item()
    moved = key.moved_item(digest, present) if existing is None else None
    if moved is not None:
        report.moved.append((moved.import_key or "", relative))
        if not dry_run:
            _item_move(moved, key=key)
        existing = moved
    if existing is None:
        if not restore_deleted and key.deletions().exists():
            report.deleted_left_out.append(relative)
            return
        if not dry_run:
            _item_create(path=path, key=key, details=details, digest=digest)
        report.created += 1  # counted after the write: a file that fails half-way is reported as skipped only
        for other in key.sources_elsewhere():
            report.paths_of_other_sources.setdefault(other, []).append(relative)
        if path.parent.name not in TYPE.labels and path.parent.name not in report.folders_not_types:
            report.folders_not_types.append(path.parent.name)
        return
    imported = _details_as_text(details)
    last = existing.imported_details
    changes = {
        name: value
        for name, value in details.items()
        if last is not None and imported[name] != last.get(name) and getattr(existing, name) != value
    }
    # A file changed in the folder since the import that last ran; an item imported before files were
    # remembered only has its file remembered now.
    image_changed = bool(existing.imported_image_sha256) and existing.imported_image_sha256 != digest
    if not dry_run:
        if existing.import_source != key.source:  # imported before sources were recorded: adopted
            Item.objects.filter(pk=existing.pk).update(import_source=key.source)
        for name, value in changes.items():
            setattr(existing, name, value)
        # An empty cell says nothing, so the value remembered for it stays: forgotten, the value coming
        # back in a later CSV counted as a change and undid the merchant's edit made meanwhile.
        remembered = (last or {}) | imported
        if changes:
            existing.imported_details = remembered
            existing.save(update_fields=[*changes, "imported_details", "updated_at"])
        elif details and last != remembered:  # remembered without touching the item's update time
            Item.objects.filter(pk=existing.pk).update(imported_details=remembered)
        if image_changed:
            _photo_replace(existing, path=path, digest=digest)  # queues its tagging
        else:
            if existing.imported_image_sha256 != digest:
                Item.objects.filter(pk=existing.pk).update(imported_image_sha256=digest)
            _photo_queue_if_untagged(existing)
    touched = bool(changes) or image_changed or moved is not None
    report.updated += touched
    report.unchanged += not touched


def _item_move(item: Item, *, key: ImportKey) -> None:
    """Give an item whose file moved its new path; a photo moved to another type's folder takes that type,
    as a new one would, unless the merchant set another type by hand."""
    old_folder, new_folder = (item.import_key or "").split("/")[0], key.relative.split("/")[0]
    with transaction.atomic():
        Item.objects.filter(pk=item.pk).update(import_source=key.source, import_key=key.relative)
        item.import_source, item.import_key = key.source, key.relative
        if new_folder != old_folder and new_folder in TYPE.labels:
            # Locked first, as the admin's hand-set tag locks it: a type the merchant sets meanwhile is not lost.
            for photo in Photo.objects.select_for_update().filter(item=item).order_by("pk"):
                hand_set = photo.tags.filter(attribute="type", source=Tag.Source.HAND).first()
                # None: from a folder that named no type. Another value than the old folder's: the merchant's.
                if hand_set is None or hand_set.value == old_folder:
                    photo.tags.filter(attribute="type", source=Tag.Source.HAND).delete()
                    photo_tag_set_by_hand(photo=photo, attribute="type", value=new_folder)


def _photo_replace(item: Item, *, path: Path, digest: str) -> None:
    """Put the folder's new file in the item's first photo (a new photo if the merchant deleted them all),
    and tag it again: its tags described the old image."""
    with transaction.atomic():
        photo = item.photos.order_by("pk").first() or Photo(item=item)
        with path.open("rb") as handle:
            photo.image.save(path.name, File(handle), save=True)  # the old file goes once this commits
        Item.objects.filter(pk=item.pk).update(imported_image_sha256=digest)
        photos_queue_tagging(photo_ids=[photo.pk], force=True, image_changed=True)


def _item_create(*, path: Path, key: ImportKey, details: dict[str, object], digest: str) -> None:
    """Create the item and its photo, with the folder's name as the photo's hand-set type."""
    type_label = path.parent.name
    # A long folder name must not make the default name longer than the field holds.
    default_name = f"{TYPE.display(type_label)[:NAME_MAX_CHARS - 9]} {path.stem[:8]}"
    fields = {"name": default_name, "currency": DEFAULT_CURRENCY} | details
    with transaction.atomic():
        # Restored: a later deletion counts anew.
        key.deletions().delete()
        item = Item.objects.create(
            import_source=key.source,
            import_key=key.relative,
            imported_details=_details_as_text(details),
            imported_image_sha256=digest,
            **fields,
        )
        photo = Photo(item=item)
        with path.open("rb") as handle:
            photo.image.save(path.name, File(handle), save=True)
        if type_label in TYPE.labels:
            Tag.objects.create(photo=photo, attribute="type", value=type_label, source=Tag.Source.HAND, score=1.0)
            tags_best_mark(photo_ids=[photo.pk])
        photos_queue_tagging(photo_ids=[photo.pk])


def _details_as_text(details: dict[str, object]) -> dict[str, str]:
    """Details as JSON can hold them, for comparison with the next import's.

    A price is written as the item stores it (2 decimals), so a spreadsheet that saves 49.00 as 49
    does not count as a change of the CSV and revert an edit made in the admin.
    """
    return {
        key: format(value.quantize(PRICE_STEP), "f") if isinstance(value, Decimal) else str(value)
        for key, value in details.items()
    }


def _photo_queue_if_untagged(item: Item) -> None:
    """Queue tagging again for an existing item's photo that an earlier run left pending or failed."""
    photo = item.photos.first()
    if photo is not None and photo.status != Photo.Status.TAGGED:
        photos_queue_tagging(photo_ids=[photo.pk])
