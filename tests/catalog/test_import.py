"""import_catalog: one item per image, folder name as hand-set type, safe to rerun, bad files reported.

The CSV's own checks (bad values, unreadable files, unused rows) are in test_import_csv.py.
"""

from __future__ import annotations

import os

import pytest
from django.core.files.base import ContentFile
from django.core.management import CommandError

from catalog.models import DeletedImport, Item, Photo, Tag
from catalog.services.tagging import photo_tag_set_by_hand
from tests.catalog.import_helpers import first_relative

pytestmark = pytest.mark.django_db


def test_import_creates_tagged_items_with_the_folder_as_hand_set_type(demo_subset, run_import):
    out, _ = run_import(str(demo_subset))
    assert "20 created" in out
    assert Item.objects.count() == 20
    assert set(Photo.objects.values_list("status", flat=True)) == {Photo.Status.TAGGED}
    hand_types = Tag.objects.filter(attribute="type", source=Tag.Source.HAND)
    assert hand_types.count() == 20
    for tag in hand_types.select_related("photo__item"):
        assert tag.photo.item.import_key.split("/")[0] == tag.value
        # the model never writes an attribute that was set by hand, and the photo is found by it
        assert not tag.photo.tags.filter(attribute="type", source=Tag.Source.MODEL).exists()
        assert tag.is_best


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


def test_a_file_whose_name_is_not_utf8_is_skipped_and_reported_and_the_rest_imported(demo_subset, run_import):
    # given: a photo named in Latin-1, as an old zip or a Windows share leaves it
    hat = demo_subset / "hat"
    original = next(hat.iterdir())
    os.rename(os.fsencode(original), os.fsencode(hat) + b"/caf\xe9.jpg")
    # when
    out, err = run_import(str(demo_subset))
    # then: that file is skipped with a reason that can be printed, and the other 19 are imported
    assert "19 created" in out and "1 skipped" in out
    assert "hat/caf\ufffd.jpg" in err and "not valid UTF-8" in err
    assert Item.objects.count() == 19


def test_dry_run_writes_nothing(demo_subset, run_import):
    out, _ = run_import(str(demo_subset), "--dry-run", "--limit", "5")
    assert "would import: 5 created" in out
    assert "--limit 5: the first 5 of 20 images (sorted by path) were looked at, the other 15 not" in out
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


def test_a_rerun_without_csv_keeps_the_merchants_edits(demo_subset, run_import):
    # given: an imported item whose details and type a merchant corrected in the admin
    run_import(str(demo_subset))
    relative = first_relative(demo_subset)
    item = Item.objects.get(import_key=relative)
    Item.objects.filter(pk=item.pk).update(
        name="Blue Oxford shirt",
        brand="Acme",
        price="49.90",
        shop_url="https://shop.example/p/1",
        description="Soft cotton.",
    )
    photo = item.photos.get()
    photo.tags.filter(attribute="type").delete()
    photo_tag_set_by_hand(photo=photo, attribute="type", value="longsleeve")

    # when
    out, _ = run_import(str(demo_subset))

    # then
    assert "0 created, 0 updated, 20 unchanged" in out
    item.refresh_from_db()
    assert (item.name, item.brand, str(item.price), item.shop_url, item.description) == (
        "Blue Oxford shirt",
        "Acme",
        "49.90",
        "https://shop.example/p/1",
        "Soft cotton.",
    )
    assert list(photo.tags.filter(attribute="type").values_list("value", "source")) == [("longsleeve", "hand")]


def test_a_rerun_with_csv_applies_only_the_values_it_holds(demo_subset, tmp_path, run_import):
    # given: an imported item a merchant edited, and a CSV that names only a new price
    run_import(str(demo_subset))
    relative = first_relative(demo_subset)
    item = Item.objects.get(import_key=relative)
    Item.objects.filter(pk=item.pk).update(name="Blue Oxford shirt", brand="Acme", shop_url="https://shop.example/p/1")
    Tag.objects.filter(photo__item=item, attribute="type").delete()
    photo_tag_set_by_hand(photo=item.photos.get(), attribute="type", value="longsleeve")
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"file,name,brand,price,currency,shop_url,description\n{relative},,,59.00,,,\n")

    # when
    out, _ = run_import(str(demo_subset), "--csv", str(csv_path))

    # then: the price changed, every edit the CSV leaves empty survived
    assert "0 created, 1 updated, 19 unchanged" in out
    item.refresh_from_db()
    assert (item.name, item.brand, str(item.price), item.shop_url) == (
        "Blue Oxford shirt",
        "Acme",
        "59.00",
        "https://shop.example/p/1",
    )
    assert list(item.photos.get().tags.filter(attribute="type").values_list("value", "source")) == [
        ("longsleeve", "hand")
    ]


def test_a_rerun_of_the_same_csv_keeps_an_admin_edit_and_a_value_changed_in_the_csv_replaces_it(
    demo_subset, tmp_path, run_import
):
    # given: an item imported with a CSV price and name, both since edited in the admin (as `make run`
    # imports the demo catalog again on every start)
    relative = first_relative(demo_subset)
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"file,name,price\n{relative},Oxford shirt,49.00\n")
    run_import(str(demo_subset), "--csv", str(csv_path))
    item = Item.objects.get(import_key=relative)
    Item.objects.filter(pk=item.pk).update(name="Blue Oxford shirt", price="39.00")

    # when: the same CSV is imported again
    out, _ = run_import(str(demo_subset), "--csv", str(csv_path))

    # then: nothing changed in the CSV, so the admin's values stay
    assert "0 created, 0 updated, 20 unchanged" in out
    item.refresh_from_db()
    assert (item.name, str(item.price)) == ("Blue Oxford shirt", "39.00")

    # when: the CSV's price changes
    csv_path.write_text(f"file,name,price\n{relative},Oxford shirt,59.00\n")
    out, _ = run_import(str(demo_subset), "--csv", str(csv_path))

    # then: the new price reaches the item; the name the CSV did not change stays the admin's
    assert "0 created, 1 updated, 19 unchanged" in out
    item.refresh_from_db()
    assert (item.name, str(item.price)) == ("Blue Oxford shirt", "59.00")


def test_a_cell_emptied_then_filled_again_with_the_same_value_keeps_the_admin_edit(item_imported_with_csv):
    # given: an item imported at 49.00, its price since edited in the admin
    item = item_imported_with_csv("file,name,price\n{file},Coat,49.00\n")
    Item.objects.filter(pk=item.pk).update(price="39.00")

    # when: a CSV with the price cell empty is imported, then the first one again
    item_imported_with_csv("file,name,price\n{file},Coat,\n")
    item = item_imported_with_csv("file,name,price\n{file},Coat,49.00\n")

    # then: the CSV's price never changed, so the admin's stays
    assert str(item.price) == "39.00"


def test_a_price_saved_again_in_another_form_is_no_change_of_the_csv(demo_subset, tmp_path, run_import):
    # given: an item imported at 49.00, its price since edited in the admin
    relative = first_relative(demo_subset)
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"file,price\n{relative},49.00\n")
    run_import(str(demo_subset), "--csv", str(csv_path))
    Item.objects.filter(import_key=relative).update(price="39.00")

    # when: the spreadsheet saves the same price as 49
    csv_path.write_text(f"file,price\n{relative},49\n")
    out, _ = run_import(str(demo_subset), "--csv", str(csv_path))

    # then: the admin's price stays
    assert "0 updated" in out
    assert str(Item.objects.get(import_key=relative).price) == "39.00"


def test_an_item_imported_before_details_were_remembered_keeps_its_values_on_the_first_rerun(
    demo_subset, tmp_path, run_import
):
    # given: an item from an import that did not remember the CSV it applied
    relative = first_relative(demo_subset)
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"file,price\n{relative},49.00\n")
    run_import(str(demo_subset), "--csv", str(csv_path))
    Item.objects.filter(import_key=relative).update(price="39.00", imported_details=None)

    # when: a CSV with another price is imported, then changed again
    out, _ = run_import(str(demo_subset), "--csv", str(csv_path))
    item = Item.objects.get(import_key=relative)

    # then: whether 49.00 was an edit or the CSV's, the item is not reverted; a later change applies
    assert "0 updated" in out and str(item.price) == "39.00"
    csv_path.write_text(f"file,price\n{relative},59.00\n")
    run_import(str(demo_subset), "--csv", str(csv_path))
    item.refresh_from_db()
    assert str(item.price) == "59.00"


def test_a_dry_run_counts_what_the_real_run_then_does(demo_subset, tmp_path, run_import):
    # given: half the folder imported, and a CSV changing one imported item and filling a new one
    run_import(str(demo_subset), "--limit", "10")
    files = sorted(path.relative_to(demo_subset).as_posix() for path in demo_subset.glob("*/*.jpg"))
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"file,price\n{files[0]},12.00\n{files[15]},30.00\n")

    # when
    dry, _ = run_import(str(demo_subset), "--csv", str(csv_path), "--dry-run")
    real, _ = run_import(str(demo_subset), "--csv", str(csv_path))

    # then
    assert "would import: 10 created, 1 updated, 9 unchanged" in dry
    assert "imported: 10 created, 1 updated, 9 unchanged" in real
    assert str(Item.objects.get(import_key=files[15]).price) == "30.00"


def test_a_long_folder_name_gives_a_name_that_fits_and_a_path_too_long_to_remember_is_skipped(
    demo_subset, tmp_path, run_import
):
    # given: a folder named with 250 letters holding a photo whose path fits, and one whose path does not
    photo = next(demo_subset.glob("*/*.jpg")).read_bytes()
    root, folder = tmp_path / "catalog", "t" * 250
    (root / folder).mkdir(parents=True)
    (root / folder / "short.jpg").write_bytes(photo)
    (root / folder / f"{'l' * 250}.jpg").write_bytes(photo)

    # when
    out, err = run_import(str(root))

    # then: the first is imported with a name the field holds, the second skipped with the reason
    assert "1 created, 0 updated, 0 unchanged, 1 skipped" in out
    assert len(Item.objects.get().name) <= 200
    assert "its path is 505 characters long; at most 500 fit" in err


@pytest.mark.parametrize("limit", ["0", "-1"])
def test_a_limit_below_one_is_refused(demo_subset, run_import, limit):
    with pytest.raises(CommandError, match="--limit must be at least 1"):
        run_import(str(demo_subset), "--limit", limit)
    assert Item.objects.count() == 0


def test_an_item_deleted_in_the_admin_stays_deleted_when_its_folder_is_imported_again(
    demo_subset, run_import, admin_client, committed
):
    # given an imported catalog, one of whose items the merchant deletes in the admin
    run_import(str(demo_subset))
    relative = first_relative(demo_subset)
    item = Item.objects.get(import_key=relative)
    with committed():
        response = admin_client.post(f"/admin/catalog/item/{item.pk}/delete/", {"post": "yes"})
    assert response.status_code == 302
    # when the folder is imported again (as `make run` imports the demo at every start)
    out, _ = run_import(str(demo_subset))
    # then the item is not back, and the report says why
    assert "0 created" in out and "19 unchanged" in out
    assert "1 image(s) left out: their items were deleted in the admin (--restore-deleted imports them again)" in out
    assert out.rstrip().endswith(relative)
    assert not Item.objects.filter(import_key=relative).exists()


def test_restore_deleted_imports_a_deleted_item_again_and_a_later_deletion_counts_anew(
    demo_subset, run_import, committed
):
    run_import(str(demo_subset))
    relative = first_relative(demo_subset)
    with committed():
        Item.objects.get(import_key=relative).delete()
    out, _ = run_import(str(demo_subset), "--restore-deleted")
    assert "1 created" in out and "left out" not in out
    assert not DeletedImport.objects.exists()
    with committed():
        Item.objects.get(import_key=relative).delete()
    assert list(DeletedImport.objects.values_list("import_key", flat=True)) == [relative]


def test_deleting_an_item_made_in_the_admin_remembers_nothing(db):
    Item.objects.create(name="Hand-made coat").delete()
    assert not DeletedImport.objects.exists()


def test_a_folder_whose_name_is_no_type_is_imported_and_said_to_give_no_hand_set_type(demo_subset, run_import):
    (demo_subset / "Hats").mkdir()
    next(demo_subset.glob("hat/*.jpg")).rename(demo_subset / "Hats" / "a.jpg")
    out, _ = run_import(str(demo_subset))
    assert "20 created" in out
    assert "folder(s) 'Hats' name no type, so their new items get no hand-set type" in out
    assert not Tag.objects.filter(photo__item__import_key="Hats/a.jpg", source=Tag.Source.HAND).exists()
    # and a rerun, which creates nothing, says nothing of it
    out, _ = run_import(str(demo_subset))
    assert "0 created" in out and "name no type" not in out


def test_an_image_changed_in_the_folder_since_the_last_import_replaces_the_items_photo(demo_subset, run_import):
    # given an imported catalog, and one image the supplier has since replaced in the folder
    run_import(str(demo_subset))
    relative = first_relative(demo_subset)
    photo = Photo.objects.get(item__import_key=relative)
    tagged_at = photo.tagged_at
    other = sorted(demo_subset.glob("*/*.jpg"))[-1].read_bytes()
    (demo_subset / relative).write_bytes(other)
    # when the folder is imported again
    out, _ = run_import(str(demo_subset))
    # then that item's photo is the new file, tagged again, and the report counts it as updated
    assert "1 updated" in out and "19 unchanged" in out
    photo.refresh_from_db()
    assert photo.image.read() == other
    assert photo.status == Photo.Status.TAGGED and photo.tagged_at > tagged_at


def test_a_photo_replaced_in_the_admin_is_not_reverted_by_an_unchanged_folder(demo_subset, run_import, committed):
    run_import(str(demo_subset))
    relative = first_relative(demo_subset)
    photo = Photo.objects.get(item__import_key=relative)
    mine = sorted(demo_subset.glob("*/*.jpg"))[-1].read_bytes()
    with committed():
        photo.image.save("merchants-own.jpg", ContentFile(mine), save=True)
    out, _ = run_import(str(demo_subset))
    assert "0 updated" in out and "20 unchanged" in out
    photo.refresh_from_db()
    assert photo.image.read() == mine


def test_an_item_imported_before_files_were_remembered_keeps_its_photo_on_the_first_rerun(demo_subset, run_import):
    run_import(str(demo_subset))
    Item.objects.update(imported_image_sha256="")
    relative = first_relative(demo_subset)
    (demo_subset / relative).write_bytes(sorted(demo_subset.glob("*/*.jpg"))[-1].read_bytes())
    out, _ = run_import(str(demo_subset))
    assert "0 updated" in out and "20 unchanged" in out
    assert Item.objects.get(import_key=relative).imported_image_sha256  # remembered from now on
