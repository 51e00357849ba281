"""Trigram indexes on items' name, brand and description, for text search's free words (PostgreSQL).

A word that names no tag ("lumen", "linen") must occur in an item's name, brand or description, which
Django asks as `UPPER(field::text) LIKE UPPER('%word%')`: without an index PostgreSQL reads every item
(74-82 ms at 100,000 items on 2 cores, ten times that at a million). pg_trgm's GIN indexes on those
very expressions answer it from the index (6-13 ms). pg_trgm ships with PostgreSQL and is trusted (a
database owner may create it since PostgreSQL 13); where it cannot be created, the search still works
by reading every item, and this migration says so instead of failing. SQLite has no such index.
"""

import sys

from django.db import migrations

from catalog.text_search_indexes import FIELDS, trigram_index_name
from catalog.text_search_indexes import trigram_indexes_create as indexes_create


def trigram_indexes_create(apps, schema_editor) -> None:
    # The same SQL as `manage.py create_text_search_indexes`, which a role refused the extension runs later.
    connection = schema_editor.connection
    if connection.vendor != "postgresql":
        return
    if reason := indexes_create(connection):
        print(
            f"\n  {reason}; text search reads every item for its free words. To index them, run CREATE "
            "EXTENSION pg_trgm as a superuser, then `manage.py create_text_search_indexes`.",
            file=sys.stderr,
        )


def trigram_indexes_drop(apps, schema_editor) -> None:
    if schema_editor.connection.vendor == "postgresql":
        for field in FIELDS:
            schema_editor.execute(f"DROP INDEX IF EXISTS {trigram_index_name(field)}")


class Migration(migrations.Migration):

    dependencies = [
        ("catalog", "0008_tag_best_value_score_index"),
    ]

    operations = [migrations.RunPython(trigram_indexes_create, trigram_indexes_drop, elidable=False)]
