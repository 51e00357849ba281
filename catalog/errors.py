"""Catalog errors with stable codes, mapped to responses at each edge."""

from __future__ import annotations

# How much of a refused value a message repeats, so a pasted paragraph does not fill the page or terminal.
MAX_ECHO_CHARS = 40


def value_echoed(value: str) -> str:
    """A refused value as an error message repeats it: at most MAX_ECHO_CHARS characters, marked when cut."""
    return value if len(value) <= MAX_ECHO_CHARS else value[:MAX_ECHO_CHARS] + "..."


class CatalogError(Exception):
    code = "catalog_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImportSourceInvalid(CatalogError):
    code = "import_source_invalid"
