"""Trigram indexes on items' name, brand and description, for text search's free words (PostgreSQL).

Created by migration catalog 0009 where the role may create the `pg_trgm` extension; where it may
not, `manage.py create_text_search_indexes` creates them once a superuser has created the extension.
(Rerunning the migration meant reversing every later migration first, which dropped their data.)
"""

from __future__ import annotations

from django.db import DatabaseError, transaction
from django.db.backends.base.base import BaseDatabaseWrapper

FIELDS = ("name", "brand", "description")


def trigram_index_name(field: str) -> str:
    return f"item_{field}_trigram"


def trigram_indexes_create(connection: BaseDatabaseWrapper) -> str | None:
    """Create the extension (if allowed) and the indexes, each if not there; returns why not, or None."""
    if connection.vendor != "postgresql":
        return f"the database is {connection.vendor}, which has no trigram indexes; text search reads every item"
    try:
        with transaction.atomic(using=connection.alias), connection.cursor() as cursor:
            cursor.execute("CREATE EXTENSION IF NOT EXISTS pg_trgm")
    except DatabaseError as exc:
        return f"pg_trgm could not be created ({str(exc).strip().splitlines()[0]})"
    with connection.cursor() as cursor:
        for field in FIELDS:
            cursor.execute(
                f"CREATE INDEX IF NOT EXISTS {trigram_index_name(field)} "
                f'ON catalog_item USING gin ((UPPER("{field}"::text)) gin_trgm_ops)'
            )
    return None
