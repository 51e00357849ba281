"""The CSV of an import: each row's item details, checked by the Item fields' own validation.

Columns: file, name, brand, price, currency, shop_url, description; UTF-8 (Excel's "CSV UTF-8" too),
separated by commas, or by the semicolons or tabs that spreadsheets of some locales write. A file that
cannot be read as a whole stops the import before it writes anything; a row with a bad value only
skips its file.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass
from pathlib import Path

from django.core.exceptions import ValidationError
from django.core.validators import ProhibitNullCharactersValidator

from catalog.errors import ImportSourceInvalid
from catalog.models import SHOP_URL_VALIDATOR, Item
from fashion_search.echo import value_echoed
from recognition.images import IMAGE_SUFFIXES

DETAIL_COLUMNS = ("name", "brand", "price", "currency", "shop_url", "description")
_NO_NULL_CHARACTERS = ProhibitNullCharactersValidator()


@dataclass(frozen=True)
class ItemDetails:
    """One CSV row's valid, non-empty details, or the reason the row was refused."""

    values: dict[str, object]
    error: str = ""


def import_details_read(csv_path: Path | None) -> dict[str, ItemDetails]:
    """Read the CSV into validated details by relative file path.

    Raises ImportSourceInvalid for a file that cannot be read as a whole (so nothing is written);
    a row with a bad value is kept as an ItemDetails with an `error`, so only its file is skipped.
    "utf-8-sig" reads Excel's "CSV UTF-8", which starts with a byte-order mark, as well as plain UTF-8.
    """
    if csv_path is None:
        return {}
    if csv_path.is_dir():
        raise ImportSourceInvalid(f"{csv_path} is a folder, not a CSV file.")
    if not csv_path.is_file():
        raise ImportSourceInvalid(f"CSV file {csv_path} does not exist.")
    reader = None
    try:
        with csv_path.open(newline="", encoding="utf-8-sig") as handle:
            # strict: a quote opened and never closed ran to the end of the file, every row after it
            # read as one cell's text, without a word.
            reader = csv.DictReader(handle, delimiter=_delimiter(handle.readline()), strict=True)
            handle.seek(0)
            return _details_parse(csv_path, reader)
    except UnicodeDecodeError as exc:
        raise ImportSourceInvalid(
            f"{csv_path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8 (in Excel: CSV UTF-8)."
        ) from None
    except csv.Error as exc:
        line = reader.reader.line_num if reader is not None else 0  # the DictReader's own stops at its last row
        where = f" at line {line}" if line else ""
        raise ImportSourceInvalid(
            f"{csv_path} is not a readable CSV file{where}: {exc} (a quote opened and not closed?)."
        ) from None


def _delimiter(header: str) -> str:
    """The character that separates the header's column names: a comma, or the semicolon or tab that
    spreadsheets set to other locales write, whichever splits out a `file` column (a comma if none)."""
    for delimiter in (",", ";", "\t"):
        if "file" in (name.strip().strip('"').lower() for name in header.split(delimiter)):
            return delimiter
    return ","


def _details_parse(csv_path: Path, reader: csv.DictReader) -> dict[str, ItemDetails]:
    # "File", " name" (a space after the comma): spreadsheets and hand-written headers vary so.
    reader.fieldnames = [column.strip().lower() for column in reader.fieldnames or []]
    repeated = sorted({column for column in reader.fieldnames if column and reader.fieldnames.count(column) > 1})
    if repeated:  # the last of two same-named columns would win, unsaid
        raise ImportSourceInvalid(f"{csv_path} names the column {repeated[0]!r} twice in its header.")
    if "file" not in reader.fieldnames:
        raise ImportSourceInvalid(f"{csv_path} needs a header row with a 'file' column.")
    # A nameless column (a trailing comma, as spreadsheets write one) holds nothing to lose.
    unknown = [column for column in reader.fieldnames if column and column not in ("file", *DETAIL_COLUMNS)]
    if unknown:  # ignored, its values would be lost without a word ("cost" meant as the price)
        raise ImportSourceInvalid(
            f"{csv_path} has columns the import does not know: {', '.join(map(repr, unknown))}; "
            f"its columns are file, {', '.join(DETAIL_COLUMNS)} (rename or remove the others)."
        )
    width = len(reader.fieldnames)
    details: dict[str, ItemDetails] = {}
    lines: dict[str, int] = {}
    for row in reader:
        where = f"{csv_path} line {reader.line_num}"
        # DictReader fills missing cells with None and gathers extra ones under the key None.
        if None in row or None in row.values():
            cells = width - list(row.values()).count(None) + len(row.get(None) or [])
            raise ImportSourceInvalid(f"{where} has {cells} columns but the header has {width}.")
        if (row.get("") or "").strip():  # a value under a nameless column would be lost without a word
            raise ImportSourceInvalid(
                f"{where} has a value in a column without a name ({value_echoed(row[''].strip())!r}); "
                "name the column or empty it."
            )
        _refuse_rows_in_a_cell(row, where=where)
        name = row["file"].strip()
        if not any((cell or "").strip() for cell in row.values()):
            continue  # an empty row, as spreadsheets write them (",,,,")
        if not name:
            name = f"(line {reader.line_num}: no file)"  # listed with the rows naming no image
        if name in lines:
            raise ImportSourceInvalid(f"{where} names {value_echoed(name)!r} again (first on line {lines[name]}).")
        lines[name] = reader.line_num
        details[name] = _details_clean(row, where=where)
    return details


def _refuse_rows_in_a_cell(row: dict[str, str], *, where: str) -> None:
    """Refuse a cell of several lines that holds what look like rows ("dress/2.jpg,..."): a quote left
    open until a later one, which read every row in between as that cell's text."""
    for column, cell in row.items():
        for line in (cell or "").splitlines()[1:]:
            first = line.split(",")[0].split(";")[0].split("\t")[0].strip().lower()
            if first.endswith(IMAGE_SUFFIXES):
                raise ImportSourceInvalid(
                    f"{where}: its {column} runs over several lines and takes in what looks like a row "
                    f"({value_echoed(line.strip())!r}); close the quote that opens it."
                )


def _details_clean(row: dict[str, str], *, where: str) -> ItemDetails:
    """Validate a row's non-empty detail cells with the Item fields' own validation."""
    values: dict[str, object] = {}
    for column in DETAIL_COLUMNS:
        raw = (row.get(column) or "").strip()
        if not raw:
            continue
        try:
            values[column] = _detail_clean(column, raw)
        except ValidationError as exc:
            return ItemDetails({}, f"{where}: {column} {value_echoed(raw)!r} refused: {' '.join(exc.messages)}")
    return ItemDetails(values)


def _detail_clean(column: str, raw: str) -> object:
    _NO_NULL_CHARACTERS(raw)  # the model fields' own validation lets them through; PostgreSQL refuses them
    if column == "currency":
        raw = raw.upper()  # the field's own validation takes capitals only
    if column == "shop_url":
        SHOP_URL_VALIDATOR(raw)  # first, alone: the field's checks would add "Enter a valid URL." to its message
    return Item._meta.get_field(column).clean(raw, None)  # runs the field's validators too
