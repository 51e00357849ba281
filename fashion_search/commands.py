"""The base of every management command that reads or writes the catalog's database."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections

from fashion_search.database import database_name, migrations_unapplied, unapplied_summary


class DatabaseCommand(BaseCommand):
    """Stops with one line, before any work, on a database it cannot reach or that is not migrated.

    Django's own check only prints a notice and runs on, into a traceback about a missing table
    ("no such table: catalog_photo") that does not say the fix: run `migrate`.
    """

    requires_migrations_checks = True

    def check_migrations(self) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            unapplied = migrations_unapplied()
        except DatabaseError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"cannot reach the database ({database_name(connection)}): {reason}") from None
        if unapplied:
            raise CommandError(
                f"the database ({database_name(connection)}) has {unapplied_summary(unapplied)}: "
                "run `python manage.py migrate` first"
            )
