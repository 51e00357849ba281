"""Items are kept per source: two suppliers' folders with the same file paths never overwrite each other."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest
from django.core.management import CommandError

from catalog.models import DeletedImport, Item

pytestmark = pytest.mark.django_db


def supplier_folder(demo_subset: Path, name: str, *, under: Path | None = None, per_type: int = 1) -> Path:
    """A copy of `per_type` demo photos of each type, in a folder called `name` (beside the demo subset,
    or `under`): the same relative paths as every other such folder, but other photos (the demo subset's
    second of each type)."""
    root = (under or demo_subset.parent) / name
    for folder in sorted(demo_subset.iterdir()):
        for photo in sorted(folder.glob("*.jpg"))[-per_type:]:
            (root / folder.name).mkdir(parents=True, exist_ok=True)
            shutil.copy(photo, root / folder.name / "item1.jpg")
    return root


def test_a_second_suppliers_folder_with_the_same_paths_makes_items_of_its_own(demo_subset, run_import, tmp_path):
    # given supplier A imported with its CSV details
    a = supplier_folder(demo_subset, "supplier-a")
    csv_path = tmp_path / "a.csv"
    csv_path.write_text("file,name,price\nhat/item1.jpg,Straw Hat,19.00\n")
    run_import(str(a), "--csv", str(csv_path))
    hat_a = Item.objects.get(import_source="supplier-a", import_key="hat/item1.jpg")
    photo_a = hat_a.photos.get().image.name

    # when supplier B's folder, with the same file paths, is imported
    out, _ = run_import(str(supplier_folder(demo_subset, "supplier-b")))

    # then B's items are new, A's keep their photo and details, and the clash is named
    assert "10 created" in out and "(source 'supplier-b')" in out
    assert "10 new item(s) have the same paths as items of source 'supplier-a'" in out
    assert Item.objects.count() == 20
    hat_a.refresh_from_db()
    assert (hat_a.name, str(hat_a.price), hat_a.photos.get().image.name) == ("Straw Hat", "19.00", photo_a)
    # and importing A again changes nothing of either
    out, _ = run_import(str(a), "--csv", str(csv_path))
    assert "0 created, 0 updated, 10 unchanged" in out


def test_a_renamed_folder_keeps_its_items_when_imported_under_its_old_source(demo_subset, run_import):
    run_import(str(demo_subset))
    renamed = demo_subset.rename(demo_subset.parent / "catalog-2027")

    out, _ = run_import(str(renamed), "--source", "import")

    assert "0 created, 0 updated, 20 unchanged" in out
    assert Item.objects.count() == 20


def test_items_imported_before_sources_were_kept_are_adopted_by_the_next_import(demo_subset, run_import):
    # given items imported by an earlier version, keyed by path alone
    run_import(str(demo_subset))
    Item.objects.update(import_source="")

    out, _ = run_import(str(demo_subset))

    assert "0 created" in out and "20 unchanged" in out
    assert set(Item.objects.values_list("import_source", flat=True)) == {"import"}


def test_an_item_deleted_from_one_source_does_not_keep_out_another_sources_image_of_the_same_path(
    demo_subset, run_import
):
    a, b = supplier_folder(demo_subset, "supplier-a"), supplier_folder(demo_subset, "supplier-b")
    run_import(str(a))
    Item.objects.get(import_source="supplier-a", import_key="hat/item1.jpg").delete()

    out, _ = run_import(str(b))

    assert "10 created" in out
    assert DeletedImport.objects.get().import_source == "supplier-a"
    # while A's rerun still leaves its deleted item out
    assert "1 image(s) left out" in run_import(str(a))[0]
    assert Item.objects.filter(import_source="supplier-a").count() == 9


def test_a_blank_source_name_is_refused_in_one_line(demo_subset, run_import):
    with pytest.raises(CommandError, match="needs a source name"):
        run_import(str(demo_subset), "--source", "  ")
    assert not Item.objects.exists()


def test_a_file_moved_to_another_type_folder_moves_its_item_and_type_instead_of_making_a_second(
    demo_subset, run_import
):
    # given an imported hat photo
    run_import(str(demo_subset))
    hat = next(demo_subset.glob("hat/*.jpg"))
    item = Item.objects.get(import_key=f"hat/{hat.name}")

    # when the merchant moves it to the shoes folder (its type was wrong) and renames it, then imports
    hat.rename(demo_subset / "shoes" / "moved.jpg")
    out, _ = run_import(str(demo_subset))

    # then the same item follows its file and takes the folder's type; nothing is duplicated
    assert "0 created, 1 updated, 19 unchanged" in out
    assert f"1 item(s) follow their file, moved or renamed: hat/{hat.name} -> shoes/moved.jpg" in out
    item.refresh_from_db()
    assert item.import_key == "shoes/moved.jpg"
    assert item.photos.get().tags.get(attribute="type", source="hand").value == "shoes"
    assert Item.objects.count() == 20


def test_the_same_image_under_a_second_name_beside_the_first_is_a_second_item(demo_subset, run_import):
    run_import(str(demo_subset))
    hat = next(demo_subset.glob("hat/*.jpg"))
    (demo_subset / "hat" / "copy.jpg").write_bytes(hat.read_bytes())

    out, _ = run_import(str(demo_subset))

    assert "1 created" in out and "follow their file" not in out


def test_a_second_folder_of_the_same_name_is_refused_until_given_a_source_of_its_own(demo_subset, run_import):
    # given two suppliers' folders, both called "photos", the first imported
    acme = supplier_folder(demo_subset, "photos", under=demo_subset.parent / "acme")
    globex = supplier_folder(demo_subset, "photos", under=demo_subset.parent / "globex")
    run_import(str(acme))

    # when the second is imported without a source, it is refused, naming both folders
    with pytest.raises(CommandError, match="Items of source 'photos' were imported from .*acme/photos, which is still"):
        run_import(str(globex))
    assert Item.objects.count() == 10

    # and with a source of its own, it makes its own items
    out, _ = run_import(str(globex), "--source", "globex")
    assert "10 created" in out and Item.objects.count() == 20


def test_a_folder_whose_recorded_namesake_is_gone_is_taken_as_it_moved(demo_subset, run_import):
    run_import(str(demo_subset))
    moved = demo_subset.parent / "elsewhere" / demo_subset.name
    moved.parent.mkdir()
    demo_subset.rename(moved)

    out, _ = run_import(str(moved))

    assert "0 created, 0 updated, 20 unchanged" in out


def test_a_file_moved_from_a_folder_that_names_no_type_into_a_type_folder_takes_that_type(demo_subset, run_import):
    # given a photo imported from a folder that names no type, so its type is the model's
    hat = next(demo_subset.glob("hat/*.jpg"))
    (demo_subset / "misc").mkdir()
    hat.rename(demo_subset / "misc" / hat.name)
    run_import(str(demo_subset))
    item = Item.objects.get(import_key=f"misc/{hat.name}")
    assert not item.photos.get().tags.filter(attribute="type", source="hand").exists()

    # when it is moved into the shoes folder
    (demo_subset / "misc" / hat.name).rename(demo_subset / "shoes" / hat.name)
    run_import(str(demo_subset))

    # then it is set by hand to shoes, in place of the model's type
    types = list(item.photos.get().tags.filter(attribute="type").values_list("value", "source"))
    assert types == [("shoes", "hand")]


def test_a_folder_imported_under_a_name_keeps_it_when_imported_again_without_one(demo_subset, run_import):
    run_import(str(demo_subset), "--source", "acme")

    out, _ = run_import(str(demo_subset))

    assert "0 created, 0 updated, 20 unchanged" in out and "(source 'acme')" in out


def test_an_import_that_fails_before_any_item_claims_no_folder(demo_subset, run_import, tmp_path):
    acme = supplier_folder(demo_subset, "photos", under=tmp_path / "acme")
    with pytest.raises(CommandError, match="does not exist"):
        run_import(str(acme), "--csv", str(tmp_path / "missing.csv"))

    out, _ = run_import(str(supplier_folder(demo_subset, "photos", under=tmp_path / "globex")))

    assert "10 created" in out


def test_a_folder_of_a_gone_sources_name_but_none_of_its_images_is_refused(demo_subset, run_import, tmp_path):
    # given source "photos" imported from a folder that is now gone (a share not mounted, say)
    acme = supplier_folder(demo_subset, "photos", under=tmp_path / "acme")
    run_import(str(acme))
    acme.rename(tmp_path / "acme" / "unmounted")
    # when another supplier's folder of the same name, with other images, is imported
    globex = tmp_path / "globex" / "photos"
    (globex / "hat").mkdir(parents=True)
    shutil.copy(sorted(demo_subset.glob("hat/*.jpg"))[0], globex / "hat")  # not the one acme has

    with pytest.raises(CommandError, match="holds none of their images"):
        run_import(str(globex))
    assert Item.objects.count() == 10


def test_a_source_named_for_another_existing_folder_says_it_now_points_here(demo_subset, run_import, tmp_path):
    acme = supplier_folder(demo_subset, "photos", under=tmp_path / "acme")
    run_import(str(acme))

    out, _ = run_import(str(supplier_folder(demo_subset, "photos", under=tmp_path / "globex")), "--source", "photos")

    assert f"source 'photos' was recorded at {acme}; it is now this folder" in out
