"""Which source an import's items belong to: the name they are kept under, and the folder behind it.

Items are keyed by source and path, so two suppliers' folders whose files share paths ("dress/1.jpg")
make items of their own: keyed by path alone, the second import replaced the first supplier's photos
and left their names and prices beside them. A folder is imported under `--source NAME`, or else under
the name it was imported under before, or else its own name; each name records its folder
(ImportSource), which tells apart two folders of one name (/srv/acme/photos, /srv/globex/photos).
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from catalog.errors import ImportSourceInvalid
from catalog.models import ImportSource, Item
from fashion_search.echo import value_echoed

SOURCE_MAX_CHARS = Item._meta.get_field("import_source").max_length
FOLDER_MAX_CHARS = ImportSource._meta.get_field("folder").max_length
# Files of a folder hashed to tell whether it holds a source's images, when the source's folder is gone.
MOVED_FOLDER_SAMPLE_FILES = 20


@dataclass(frozen=True)
class ResolvedSource:
    name: str
    folder: str
    recorded_folder: str = ""  # the folder recorded before, where it differs: moved, or named by --source


def import_source_resolve(root: Path, source: str | None, files: list[Path]) -> ResolvedSource:
    """The source of the folder `root` (whose images are `files`), or ImportSourceInvalid saying why not.

    Without `source`: the name this folder was imported under before, else the folder's own name. A
    folder of that name recorded elsewhere and still there is another supplier's: refused until given
    a name. One whose recorded folder is gone is taken as it moved only if it holds some of that
    source's images (a share that is not mounted looks gone too). Writes nothing (`import_source_record`).
    """
    folder = str(root.resolve())
    if len(folder) > FOLDER_MAX_CHARS:
        raise ImportSourceInvalid(f"The folder's path has {len(folder)} characters; at most {FOLDER_MAX_CHARS} fit.")
    if source is None:
        known = ImportSource.objects.filter(folder=folder).first()
        name = known.name if known is not None else root.resolve().name
    else:
        name = source.strip()
    if not name:
        raise ImportSourceInvalid("The import needs a source name: give --source NAME.")
    if len(name) > SOURCE_MAX_CHARS or not name.isprintable():
        raise ImportSourceInvalid(
            f"The source name {value_echoed(name)!r} must be printable and at most {SOURCE_MAX_CHARS} characters."
        )
    recorded = ImportSource.objects.filter(name=name).first()
    if recorded is None or recorded.folder == folder:
        return ResolvedSource(name, folder)
    if source is None and Path(recorded.folder).is_dir():
        raise ImportSourceInvalid(
            f"Items of source {name!r} were imported from {recorded.folder}, which is still there, and this "
            f"folder is {folder}: give this one a name of its own with --source NAME (another supplier), or "
            f"--source {name!r} to import it as that source."
        )
    if source is None and not _holds_images_of(files, name):
        raise ImportSourceInvalid(
            f"Items of source {name!r} were imported from {recorded.folder}, which is not there now, and this "
            f"folder holds none of their images: give it a name of its own with --source NAME, or --source "
            f"{name!r} if it is that folder moved, its images since replaced."
        )
    return ResolvedSource(name, folder, recorded_folder=recorded.folder)


def import_source_record(resolved: ResolvedSource) -> None:
    """Record the source's folder: called once the import has read its folder and CSV, before any item."""
    ImportSource.objects.update_or_create(name=resolved.name, defaults={"folder": resolved.folder})


def _holds_images_of(files: list[Path], name: str) -> bool:
    """Whether some of the first MOVED_FOLDER_SAMPLE_FILES files are images the source's items came from
    (or the source has no items left to compare with)."""
    items = Item.objects.filter(import_source=name).exclude(imported_image_sha256="")
    if not items.exists():
        return True
    digests = [hashlib.sha256(path.read_bytes()).hexdigest() for path in files[:MOVED_FOLDER_SAMPLE_FILES]]
    return items.filter(imported_image_sha256__in=digests).exists()
