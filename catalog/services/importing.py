"""Import a folder of images (a sub-folder per type) into the catalog; safe to run again.

Each image becomes an item keyed by its path relative to the folder, so a second run updates
instead of duplicating. The sub-folder's name becomes the item photo's hand-set type.
An optional CSV (columns: file, name, brand, price, currency, shop_url, description) fills the
item's details; `file` is the same relative path.
"""

from __future__ import annotations

import csv
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from pathlib import Path

from django.core.files import File
from django.db import transaction

from catalog.errors import ImportSourceInvalid
from catalog.models import Item, Photo, Tag
from catalog.services.items import photos_queue_tagging
from recognition.errors import ImageTooLarge, InvalidImage
from recognition.images import IMAGE_SUFFIXES, decode_image
from recognition.labels import TYPE

logger = logging.getLogger(__name__)

IMPORT_MAX_BYTES = 50 * 1024 * 1024
IMPORT_MAX_PIXELS = 80_000_000


@dataclass
class ImportReport:
    created: int = 0
    updated: int = 0
    unchanged: int = 0
    skipped: list[tuple[str, str]] = field(default_factory=list)  # (relative path, reason)


def import_files_list(root: Path) -> list[Path]:
    """Image files under `root`, sorted, one level of sub-folders deep."""
    if not root.is_dir():
        raise ImportSourceInvalid(f"{root} is not a directory.")
    files = sorted(
        path for path in root.glob("*/*") if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES
    )
    if not files:
        raise ImportSourceInvalid(f"No images found in sub-folders of {root} (expected a sub-folder per type).")
    return files


def import_details_read(csv_path: Path | None) -> dict[str, dict[str, str]]:
    if csv_path is None:
        return {}
    if not csv_path.is_file():
        raise ImportSourceInvalid(f"CSV file {csv_path} does not exist.")
    with csv_path.open(newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        if not reader.fieldnames or "file" not in reader.fieldnames:
            raise ImportSourceInvalid(f"{csv_path} needs a header row with a 'file' column.")
        return {row["file"].strip(): row for row in reader}


def catalog_import(
    *,
    root: Path,
    csv_path: Path | None = None,
    dry_run: bool = False,
    limit: int | None = None,
    progress: Callable[[int], None] | None = None,
) -> ImportReport:
    """Import or update one item per image; unreadable images are skipped and reported."""
    files = import_files_list(root)[:limit]
    details = import_details_read(csv_path)
    report = ImportReport()
    for path in files:
        relative = path.relative_to(root).as_posix()
        try:
            _import_one(path=path, relative=relative, details=details.get(relative, {}), dry_run=dry_run, report=report)
        except (InvalidImage, ImageTooLarge, OSError) as exc:
            report.skipped.append((relative, getattr(exc, "message", str(exc))))
            logger.warning("skipped %s: %s", relative, exc)
        if progress:
            progress(1)
    return report


def _import_one(*, path: Path, relative: str, details: dict[str, str], dry_run: bool, report: ImportReport) -> None:
    data = path.read_bytes()
    decode_image(data, max_bytes=IMPORT_MAX_BYTES, max_pixels=IMPORT_MAX_PIXELS)  # refuse unreadable files
    type_label = path.parent.name
    defaults = {
        "name": details.get("name") or f"{TYPE.display(type_label)} {path.stem[:8]}",
        "brand": details.get("brand", ""),
        "price": _price(details.get("price")),
        "currency": (details.get("currency") or "EUR")[:3].upper(),
        "shop_url": details.get("shop_url", ""),
        "description": details.get("description", ""),
    }
    existing = Item.objects.filter(import_key=relative).first()
    changed = existing is not None and any(getattr(existing, key) != value for key, value in defaults.items())
    if not dry_run:
        _item_write(
            path=path, relative=relative, type_label=type_label, defaults=defaults, existing=existing, changed=changed
        )
    # Counted after the write, so that a file that fails half-way is reported as skipped only; a dry
    # run counts exactly what a real run would (an existing item is "updated" only when a detail differs).
    report.created += existing is None
    report.updated += changed
    report.unchanged += existing is not None and not changed


def _item_write(
    *, path: Path, relative: str, type_label: str, defaults: dict[str, object], existing: Item | None, changed: bool
) -> None:
    with transaction.atomic():
        if existing is None:
            item = Item.objects.create(import_key=relative, **defaults)
            photo = Photo(item=item)
            with path.open("rb") as handle:
                photo.image.save(path.name, File(handle), save=True)
        else:
            item = existing
            if changed:
                Item.objects.filter(pk=item.pk).update(**defaults)
            photo = item.photos.first()
            if photo is None:
                return
        if type_label in TYPE.labels:
            Tag.objects.update_or_create(
                photo=photo,
                attribute="type",
                source=Tag.Source.HAND,
                defaults={"value": type_label, "score": 1.0},
            )
        if photo.status != Photo.Status.TAGGED:
            photos_queue_tagging(photo_ids=[photo.pk])


def _price(raw: str | None) -> Decimal | None:
    if not raw:
        return None
    try:
        return Decimal(raw.strip())
    except InvalidOperation:
        raise ImportSourceInvalid(f"price {raw!r} is not a number") from None
