"""Create the trigram indexes of text search's free words, where migration 0009 could not (PostgreSQL)."""

from __future__ import annotations

from django.core.management.base import CommandError
from django.db import DEFAULT_DB_ALIAS, connections

from catalog.text_search_indexes import FIELDS, trigram_indexes_create
from fashion_search.commands import DatabaseCommand


class Command(DatabaseCommand):
    help = (
        "Create the pg_trgm extension (if this role may) and the trigram indexes on items' name, brand and "
        "description that text search's free words use; does nothing to indexes already there."
    )

    def handle(self, *args: object, **options: object) -> None:
        reason = trigram_indexes_create(connections[DEFAULT_DB_ALIAS])
        if reason:
            raise CommandError(
                f"{reason}. On PostgreSQL, run CREATE EXTENSION pg_trgm as a superuser, then this command again."
            )
        self.stdout.write(f"trigram indexes on {', '.join(FIELDS)} are in place")
