"""import_catalog: one item per image, folder name as hand-set type, safe to rerun, bad files reported."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command

from catalog.models import Item, Photo, Tag

pytestmark = pytest.mark.django_db


@pytest.fixture
def run_import(committed):
    def run(*args: str) -> tuple[str, str]:
        out, err = io.StringIO(), io.StringIO()
        with committed():
            call_command("import_catalog", *args, stdout=out, stderr=err)
        return out.getvalue(), err.getvalue()

    return run


def test_import_creates_tagged_items_with_the_folder_as_hand_set_type(demo_subset, run_import):
    out, _ = run_import(str(demo_subset))
    assert "20 created" in out
    assert Item.objects.count() == 20
    assert set(Photo.objects.values_list("status", flat=True)) == {Photo.Status.TAGGED}
    hand_types = Tag.objects.filter(attribute="type", source=Tag.Source.HAND)
    assert hand_types.count() == 20
    for tag in hand_types.select_related("photo__item"):
        assert tag.photo.item.import_key.split("/")[0] == tag.value
        # the model never writes an attribute that was set by hand
        assert not tag.photo.tags.filter(attribute="type", source=Tag.Source.MODEL).exists()


def test_importing_twice_creates_no_duplicates(demo_subset, run_import):
    run_import(str(demo_subset))
    out, _ = run_import(str(demo_subset))
    assert "0 created" in out and "20 unchanged" in out
    assert Item.objects.count() == 20
    assert Photo.objects.count() == 20


def test_csv_details_fill_the_items_and_a_rerun_updates_them(demo_subset, tmp_path, run_import):
    first = sorted(demo_subset.glob("*/*.jpg"))[0]
    relative = first.relative_to(demo_subset).as_posix()
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"file,name,price,shop_url\n{relative},Blue Coat,49.90,https://shop.example/coat\n")
    run_import(str(demo_subset), "--csv", str(csv_path))
    item = Item.objects.get(import_key=relative)
    assert (item.name, str(item.price), item.shop_url) == ("Blue Coat", "49.90", "https://shop.example/coat")
    csv_path.write_text(f"file,name,price,shop_url\n{relative},Navy Coat,45.00,https://shop.example/coat\n")
    out, _ = run_import(str(demo_subset), "--csv", str(csv_path))
    assert "1 updated" in out
    assert Item.objects.get(import_key=relative).name == "Navy Coat"


def test_unreadable_files_are_skipped_and_reported(demo_subset, run_import):
    (demo_subset / "hat" / "broken.jpg").write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    (demo_subset / "hat" / "notes.png").write_bytes(b"<html>hello</html>")
    out, err = run_import(str(demo_subset))
    assert "20 created" in out and "2 skipped" in out
    assert "hat/broken.jpg" in err and "hat/notes.png" in err
    assert Item.objects.count() == 20


def test_dry_run_writes_nothing(demo_subset, run_import):
    out, _ = run_import(str(demo_subset), "--dry-run", "--limit", "5")
    assert "would import: 5 created" in out
    assert Item.objects.count() == 0


def test_a_dry_run_after_an_import_reports_only_what_would_change(demo_subset, tmp_path, run_import):
    run_import(str(demo_subset))
    out, _ = run_import(str(demo_subset), "--dry-run")
    assert "would import: 0 created, 0 updated, 20 unchanged" in out

    first = sorted(demo_subset.glob("*/*.jpg"))[0]
    relative = first.relative_to(demo_subset).as_posix()
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"file,name\n{relative},Renamed Coat\n")
    out, _ = run_import(str(demo_subset), "--csv", str(csv_path), "--dry-run")
    assert "would import: 0 created, 1 updated, 19 unchanged" in out
    assert Item.objects.get(import_key=relative).name != "Renamed Coat"


def test_a_missing_directory_is_a_clean_command_error(tmp_path, run_import):
    with pytest.raises(CommandError, match="is not a directory"):
        run_import(str(tmp_path / "nowhere"))
