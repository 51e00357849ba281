"""The images of an import folder: those it takes (TYPE/file), and those it passes over, by why."""

from __future__ import annotations

from pathlib import Path

from catalog.errors import ImportSourceInvalid
from recognition.images import IMAGE_SUFFIXES


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


# Photo formats a merchant's folder may hold that the import does not read: named, not passed over unsaid.
_OTHER_PHOTO_SUFFIXES = (".tif", ".tiff", ".bmp", ".heic", ".heif", ".avif", ".jxl", ".raw", ".dng", ".cr2", ".nef")
# Beyond this many files the folder is not looked through for what is passed over (a whole disk given by mistake).
PASSED_OVER_SCAN_MAX_FILES = 200_000


def import_files_passed_over(root: Path) -> dict[str, list[str]]:
    """Images under `root` the import does not take, by why, as paths relative to `root`.

    Only `TYPE/file` with a suffix the import reads is taken; images elsewhere were left out without a
    word: at the top level, a folder too deep (the parent folder given by mistake), in another format
    (TIFF, HEIC), or links to nothing.
    """
    passed_over: dict[str, list[str]] = {}
    for count, path in enumerate(root.rglob("*")):
        if count >= PASSED_OVER_SCAN_MAX_FILES:
            break
        relative = path.relative_to(root)
        suffix = path.suffix.lower()
        if path.is_symlink() and not path.exists():
            why = "link to nothing"
        elif not path.is_file() or suffix not in IMAGE_SUFFIXES + _OTHER_PHOTO_SUFFIXES:
            continue
        elif suffix in _OTHER_PHOTO_SUFFIXES:
            why = f"are in a format the import does not read (convert them to JPEG): {suffix}"
        elif len(relative.parts) == 1:
            why = "lie at the top of the folder (put each in the sub-folder of its type)"
        elif len(relative.parts) > 2:
            why = "lie more than one folder deep (images go in TYPE/file; was the parent folder given?)"
        else:
            continue
        passed_over.setdefault(why, []).append(name_printable(relative.as_posix()))
    return passed_over


def name_printable(relative: str) -> str:
    """The file name as it can be shown: bytes that are not UTF-8 become U+FFFD."""
    return relative.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
