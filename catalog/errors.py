"""Catalog errors with stable codes, mapped to responses at each edge."""

from __future__ import annotations


class CatalogError(Exception):
    code = "catalog_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ImportSourceInvalid(CatalogError):
    code = "import_source_invalid"
