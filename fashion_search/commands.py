"""The base of every management command that reads or writes the catalog's database."""

from __future__ import annotations

from django.core.management.base import BaseCommand, CommandError
from django.db import DEFAULT_DB_ALIAS, DatabaseError, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor


class DatabaseCommand(BaseCommand):
    """Stops with one line, before any work, on a database it cannot reach or that is not migrated.

    Django's own check only prints a notice and runs on, into a traceback about a missing table
    ("no such table: catalog_photo") that does not say the fix: run `migrate`.
    """

    requires_migrations_checks = True

    def check_migrations(self) -> None:
        connection = connections[DEFAULT_DB_ALIAS]
        try:
            executor = MigrationExecutor(connection)
            plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
        except DatabaseError as exc:
            reason = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise CommandError(f"cannot reach the database ({database_name(connection)}): {reason}") from None
        if plan:
            apps = ", ".join(sorted({migration.app_label for migration, _backwards in plan}))
            raise CommandError(
                f"the database ({database_name(connection)}) has {len(plan)} unapplied migration(s) "
                f"for {apps}: run `python manage.py migrate` first"
            )


def database_name(connection: BaseDatabaseWrapper) -> str:
    """Which database, without its password: a file for SQLite, host and name otherwise."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return str(settings["NAME"])
    host = settings.get("HOST") or "localhost"
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"{connection.vendor} {settings['NAME']} on {host}{port}"
