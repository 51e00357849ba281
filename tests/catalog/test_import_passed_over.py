"""import_catalog names the images it does not take, instead of passing them over without a word."""

from __future__ import annotations

import pytest

from catalog.models import Item

pytestmark = pytest.mark.django_db


def test_images_outside_type_folders_other_formats_and_dead_links_are_named(demo_subset, run_import):
    # given a folder with, beside its TYPE/file images: one at the top, one two folders deep, a TIFF,
    # a link to nothing, and a file that is no image at all
    photo = next(demo_subset.glob("hat/*.jpg"))
    (demo_subset / "loose.jpg").write_bytes(photo.read_bytes())
    (demo_subset / "hat" / "summer").mkdir()
    (demo_subset / "hat" / "summer" / "deep.jpg").write_bytes(photo.read_bytes())
    (demo_subset / "hat" / "scan.tif").write_bytes(b"II*\x00")
    (demo_subset / "hat" / "gone.jpg").symlink_to(demo_subset / "nowhere.jpg")
    (demo_subset / "hat" / "notes.txt").write_text("not an image")

    out, err = run_import(str(demo_subset))

    assert "20 created, 0 updated, 0 unchanged, 0 skipped" in out
    assert "1 file(s) passed over, as they lie at the top of the folder" in err and "loose.jpg" in err
    assert "1 file(s) passed over, as they lie more than one folder deep" in err and "hat/summer/deep.jpg" in err
    assert "format the import does not read (convert them to JPEG): .tif: hat/scan.tif" in err
    assert "1 file(s) passed over, as they link to nothing: hat/gone.jpg" in err
    assert "notes.txt" not in err
    assert Item.objects.count() == 20
