"""The CSV of an import: each row's item details, checked by the Item fields' own validation.

Columns: file, name, brand, price, currency, shop_url, description; UTF-8 (Excel's "CSV UTF-8" too),
separated by commas, or by the semicolons or tabs that spreadsheets of some locales write. A file that
cannot be read as a whole stops the import before it writes anything; a row with a bad value only
skips its file.
"""

from __future__ import annotations

import csv
import io
import re
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
_DECIMAL_COMMA = re.compile(r"\d+,\d{1,2}")


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
    try:
        text = csv_path.read_text(encoding="utf-8-sig")
    except UnicodeDecodeError as exc:
        raise ImportSourceInvalid(
            f"{csv_path} is not UTF-8 text (byte {exc.object[exc.start]:#04x} at offset {exc.start}); "
            "save it as UTF-8 (in Excel: CSV UTF-8)."
        ) from None
    delimiter = _delimiter(text.split("\n", 1)[0])
    if line := _quote_open_to_the_end(text, delimiter):
        # Read on, every row after it was one cell's text, without a word.
        raise ImportSourceInvalid(f"{csv_path} line {line} opens a quote that is never closed; close it.")
    try:
        return _details_parse(csv_path, csv.DictReader(io.StringIO(text, newline=""), delimiter=delimiter))
    except csv.Error as exc:
        raise ImportSourceInvalid(f"{csv_path} is not a readable CSV file: {exc}.") from None


def _quote_open_to_the_end(text: str, delimiter: str) -> int | None:
    """The line of a quote the file never closes, or None. Read strictly only for this: a stray quote
    inside a cell ('"Levi's" 501') reads as the lenient reader always read it."""
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    last_row_end = 0
    for _ in range(text.count("\n") + 2):  # a row a line at least: the reader goes on after an error
        try:
            next(reader)
        except StopIteration:
            return None
        except csv.Error as exc:
            if "unexpected end of data" in str(exc):
                return last_row_end + 1  # the row that opened the quote began after the last whole one
        last_row_end = reader.line_num  # a stray quote's row too: read on past it
    return None


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
        _refuse_rows_in_a_cell(row, where=where, delimiter=reader.reader.dialect.delimiter)
        name = row["file"].strip()
        if not any((cell or "").strip() for cell in row.values()):
            continue  # an empty row, as spreadsheets write them (",,,,")
        if not name:
            name = f"(line {reader.line_num}: no file)"  # listed with the rows naming no image
        if name in lines:
            raise ImportSourceInvalid(f"{where} names {value_echoed(name)!r} again (first on line {lines[name]}).")
        lines[name] = reader.line_num
        details[name] = _details_clean(row, where=where, decimal_comma=reader.reader.dialect.delimiter != ",")
    return details


def _refuse_rows_in_a_cell(row: dict[str, str], *, where: str, delimiter: str) -> None:
    """Refuse a cell of several lines that holds what look like rows ("dress/2.jpg,..."): a quote left
    open until a later one, which read every row in between as that cell's text. A line of a
    description that only ends in a file name ("see sizes.png") has no separator after a path."""
    for column, cell in row.items():
        for line in (cell or "").splitlines()[1:]:
            first, separated, _ = line.partition(delimiter)
            if separated and first.strip().lower().endswith(IMAGE_SUFFIXES):
                raise ImportSourceInvalid(
                    f"{where}: its {column} runs over several lines and takes in what looks like a row "
                    f"({value_echoed(line.strip())!r}); close the quote that opens it."
                )


def _details_clean(row: dict[str, str], *, where: str, decimal_comma: bool = False) -> ItemDetails:
    """Validate a row's non-empty detail cells with the Item fields' own validation.

    With `decimal_comma` (a CSV separated by semicolons or tabs, as spreadsheets of the locales that
    write 12,50 save it), a price's decimal comma reads as a point.
    """
    values: dict[str, object] = {}
    for column in DETAIL_COLUMNS:
        raw = (row.get(column) or "").strip()
        if not raw:
            continue
        if column == "price" and decimal_comma and _DECIMAL_COMMA.fullmatch(raw):
            raw = raw.replace(",", ".")
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
