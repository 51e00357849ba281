"""import_catalog's CSV: bad values skip their file and name the line, unreadable files stop the import
before anything is written, and rows that name no image are listed."""

from __future__ import annotations

import pytest
from django.core.management import CommandError

from catalog.models import Item
from tests.catalog.import_helpers import first_relative

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    ("column", "value", "reason"),
    [
        ("price", "1e20", "no more than 10 digits"),
        ("price", "123456789", "no more than 8 digits before the decimal point"),
        ("price", "NaN", "must be a decimal number"),
        ("price", "Infinity", "must be a decimal number"),
        ("price", "-5", "cannot be negative"),
        ("price", "1.999", "no more than 2 decimal places"),
        ("price", "12,50", "must be a decimal number"),
        ("shop_url", "javascript:alert(1)", "Enter an http:// or https:// address."),
        ("shop_url", "ftp://shop.example/coat", "Enter an http:// or https:// address."),
        ("currency", "EURO", "three-letter currency code"),
        ("brand", "Bad\x00Brand", "Null characters are not allowed"),  # PostgreSQL cannot store them
        ("description", "Soft\x00wool", "Null characters are not allowed"),
    ],
)
def test_a_csv_value_the_item_cannot_hold_skips_that_file_and_names_the_line(
    demo_subset, tmp_path, run_import, column, value, reason
):
    # given: an imported item with a known price, and a CSV whose second row has a bad value
    run_import(str(demo_subset))
    files = sorted(path.relative_to(demo_subset).as_posix() for path in demo_subset.glob("*/*.jpg"))
    Item.objects.filter(import_key=files[0]).update(price="10.00", shop_url="https://shop.example/a")
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f'file,name,{column}\n{files[1]},Fine Coat,\n{files[0]},Bad Coat,"{value}"\n')

    # when
    out, err = run_import(str(demo_subset), "--csv", str(csv_path))

    # then: the bad row's item is untouched and reported, the rest imported; every item still reads back
    assert "1 updated, 18 unchanged, 1 skipped" in out
    assert f"skipped {files[0]}: {csv_path} line 3: {column} {value!r} refused" in err and reason in err
    item = Item.objects.get(import_key=files[0])
    assert (item.name != "Bad Coat", str(item.price), item.shop_url) == (True, "10.00", "https://shop.example/a")
    assert Item.objects.get(import_key=files[1]).name == "Fine Coat"
    assert all(price is None or price.is_finite() for price in Item.objects.values_list("price", flat=True))


def test_a_bad_csv_value_for_a_new_file_creates_nothing_for_it(demo_subset, tmp_path, run_import):
    relative = first_relative(demo_subset)
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"file,price\n{relative},1e20\n")

    out, err = run_import(str(demo_subset), "--csv", str(csv_path))

    assert "19 created, 0 updated, 0 unchanged, 1 skipped" in out
    assert "line 2: price '1e20' refused" in err
    assert not Item.objects.filter(import_key=relative).exists()


def test_currency_is_stored_in_capitals(item_imported_with_csv):
    assert item_imported_with_csv("file,currency\n{file},usd\n").currency == "USD"


def test_excel_csv_utf8_with_a_byte_order_mark_just_works(demo_subset, tmp_path, run_import):
    relative = first_relative(demo_subset)
    csv_path = tmp_path / "items.csv"
    csv_path.write_bytes(f"file,name\n{relative},Café Zürich\n".encode("utf-8-sig"))

    run_import(str(demo_subset), "--csv", str(csv_path))

    assert Item.objects.get(import_key=relative).name == "Café Zürich"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ("file,name\n{relative},Café Zürich\n".encode("latin-1"), "is not UTF-8 text .*save it as UTF-8"),
        (
            b"file,name,brand,price,currency,shop_url,description\n{relative},Short row\n",
            "line 2 has 2 columns but the header has 7",
        ),
        (b"file,name\n{relative},Coat,extra\n", "line 2 has 3 columns but the header has 2"),
        (b"name,price\nCoat,10\n", "needs a header row with a 'file' column"),
        (
            b"file,name\n{relative},Coat\nhat/new.jpg,Cap\n{relative},Jacket\n",
            "line 4 names '.*' again \\(first on line 2\\)",
        ),
        (b"file,name,name,price\n{relative},Coat,Jacket,10\n", "names the column 'name' twice in its header"),
        (
            b'file,name,description\n{relative},Coat,"Warm\nhat/new.jpg,Cap,ok\n',
            "line 2 opens a quote that is never closed; close it",
        ),
        (
            b'file,name,description\n{relative},Coat,"Warm\nhat/new.jpg,Cap,ok"\n',
            "line 3: its description runs over several lines and takes in what looks like a row "
            "\\('hat/new.jpg,Cap,ok'\\); close the quote",
        ),
        (b"file,name,\n{relative},Coat,49.90\n", "line 2 has a value in a column without a name \\('49.90'\\)"),
        (
            b'file,name,description\nhat/new.jpg,"Levi\'s" 501,ok\n{relative},Coat,"Warm\nhat/x.jpg,Cap,ok\n',
            "line 3 opens a quote that is never closed; close it",
        ),
    ],
    ids=[
        "latin-1", "short-row", "long-row", "no-file-column", "file-twice", "column-twice",
        "quote-never-closed", "quote-closed-rows-later", "value-in-nameless-column",
        "quote-never-closed-after-a-stray-one",
    ],
)
def test_an_unreadable_csv_is_a_clean_command_error_and_writes_nothing(
    demo_subset, tmp_path, run_import, content, message
):
    # given: an imported catalog a merchant edited
    run_import(str(demo_subset))
    relative = first_relative(demo_subset)
    Item.objects.filter(import_key=relative).update(name="Edited")
    (demo_subset / "hat" / "new.jpg").write_bytes((sorted(demo_subset.glob("hat/*.jpg"))[0]).read_bytes())
    csv_path = tmp_path / "items.csv"
    csv_path.write_bytes(content.replace(b"{relative}", relative.encode()))

    # when / then
    with pytest.raises(CommandError, match=message):
        run_import(str(demo_subset), "--csv", str(csv_path))
    assert Item.objects.get(import_key=relative).name == "Edited"
    assert not Item.objects.filter(import_key="hat/new.jpg").exists()


def test_csv_rows_that_name_no_image_are_listed_so_a_typo_is_noticed(demo_subset, tmp_path, run_import):
    relative = first_relative(demo_subset)
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(
        f"file,name\n{relative},Coat\n{relative.upper()},Shouting\n,\n./{relative},Dotted\n,\n,Nameless\n"
    )

    out, err = run_import(str(demo_subset), "--csv", str(csv_path))

    assert "20 created" in out
    assert Item.objects.get(import_key=relative).name == "Coat"
    assert f"3 CSV row(s) name no image under {demo_subset} and were not used" in err  # empty rows are no rows
    assert f"{relative.upper()}, ./{relative}, (line 7: no file)" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [(("",), "the folder to import is empty"), (("{root}", "--csv", "{root}"), "is a folder, not a CSV file")],
    ids=["empty folder argument", "csv is a folder"],
)
def test_an_argument_that_names_the_wrong_thing_is_a_clean_command_error(demo_subset, run_import, args, message):
    with pytest.raises(CommandError, match=message):
        run_import(*(arg.format(root=demo_subset) for arg in args))
    assert not Item.objects.exists()


def test_header_names_are_read_whatever_their_case_and_spaces(demo_subset, tmp_path, run_import):
    relative = first_relative(demo_subset)
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"File, Name ,PRICE,\n{relative},Navy Coat,49.90,\n")

    run_import(str(demo_subset), "--csv", str(csv_path))

    item = Item.objects.get(import_key=relative)
    assert (item.name, str(item.price)) == ("Navy Coat", "49.90")


def test_a_column_the_import_does_not_know_is_refused_before_anything_is_written(
    demo_subset, tmp_path, run_import
):
    # "cost" meant as the price would otherwise be dropped without a word
    csv_path = tmp_path / "items.csv"
    csv_path.write_text(f"file,title,cost\n{first_relative(demo_subset)},Navy Coat,49.90\n")

    with pytest.raises(CommandError, match="columns the import does not know: 'title', 'cost'"):
        run_import(str(demo_subset), "--csv", str(csv_path))
    assert not Item.objects.exists()


@pytest.mark.parametrize("delimiter", [";", "\t"], ids=["semicolons", "tabs"])
def test_a_csv_separated_as_spreadsheets_of_other_locales_write_it_is_read(item_imported_with_csv, delimiter):
    item = item_imported_with_csv(f"file{delimiter}name{delimiter}price\n{{file}}{delimiter}Coat{delimiter}49.90\n")
    assert (item.name, str(item.price)) == ("Coat", "49.90")


def test_a_stray_quote_inside_a_cell_reads_as_it_always_did(item_imported_with_csv):
    item = item_imported_with_csv('file,name,description\n{file},"Levi\'s" 501 jeans,Straw hat.\n')
    assert item.name == "Levi's 501 jeans"


def test_a_description_line_that_ends_in_a_file_name_is_no_row(item_imported_with_csv):
    item = item_imported_with_csv('file,name,description\n{file},Hat,"Straw hat.\nSee the size chart sizes.png"\n')
    assert item.description.endswith("sizes.png")


def test_a_semicolon_csv_reads_its_decimal_comma_prices(item_imported_with_csv):
    assert str(item_imported_with_csv("file;name;price\n{file};Coat;12,50\n").price) == "12.50"
