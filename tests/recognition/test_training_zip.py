"""Reading training data the way macOS Finder packs it: __MACOSX folders and "._" forks are not data."""

from __future__ import annotations

import zipfile
from pathlib import Path

from recognition.training import load_folder_dataset, zip_dataset_extract
from tests.conftest import demo_photos

FORK = b"\x00\x05\x16\x07" + b"\0" * 100  # an AppleDouble header: not an image, despite its .jpg name


def finder_zip(path: Path, top: str) -> Path:
    """A zip as Finder's "Compress" makes it: each photo has a "._" fork under __MACOSX."""
    with zipfile.ZipFile(path, "w") as archive:
        for photo in demo_photos(per_type=2):
            if photo.parent.name in ("hat", "shoes"):
                name = f"{top}{photo.parent.name}/{photo.name}"
                archive.write(photo, name)
                archive.writestr(f"__MACOSX/{top}{photo.parent.name}/._{photo.name}", FORK)
    return path


def test_a_finder_zip_with_one_top_folder_unpacks_to_its_label_folders_only(tmp_path):
    root = zip_dataset_extract(finder_zip(tmp_path / "f.zip", "outfits/"), tmp_path / "out", max_unpacked_bytes=10**9)
    assert root.name == "outfits"
    assert not (tmp_path / "out" / "__MACOSX").exists()
    dataset = load_folder_dataset(root)
    assert dataset.labels == ("hat", "shoes") and len(dataset.files) == 4


def test_a_folder_with_macos_metadata_gives_no_extra_label_or_photo(tmp_path):
    root = tmp_path / "data"
    for photo in demo_photos(per_type=2):
        if photo.parent.name in ("hat", "shoes"):
            (root / photo.parent.name).mkdir(parents=True, exist_ok=True)
            (root / photo.parent.name / photo.name).write_bytes(photo.read_bytes())
            (root / photo.parent.name / f"._{photo.name}").write_bytes(FORK)
            (root / "__MACOSX" / photo.parent.name).mkdir(parents=True, exist_ok=True)
    dataset = load_folder_dataset(root, labels=["hat", "shoes"])
    assert dataset.labels == ("hat", "shoes")
    assert len(dataset.files) == 4 and not any(p.name.startswith("._") for p in dataset.files)
