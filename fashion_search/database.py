"""Whether the database is there and migrated, asked before work that needs its tables."""

from __future__ import annotations

from django.db import DEFAULT_DB_ALIAS, connections
from django.db.backends.base.base import BaseDatabaseWrapper
from django.db.migrations.executor import MigrationExecutor


def migrations_unapplied(alias: str = DEFAULT_DB_ALIAS) -> list[tuple[str, str]]:
    """(app, migration) of every migration not applied yet, in order; DatabaseError if unreachable."""
    executor = MigrationExecutor(connections[alias])
    plan = executor.migration_plan(executor.loader.graph.leaf_nodes())
    return [(migration.app_label, migration.name) for migration, _backwards in plan]


def unapplied_summary(unapplied: list[tuple[str, str]]) -> str:
    apps = ", ".join(sorted({app for app, _name in unapplied}))
    return f"{len(unapplied)} unapplied migration(s) for {apps}"


def database_name(connection: BaseDatabaseWrapper) -> str:
    """Which database, without its password: a file for SQLite, host and name otherwise."""
    settings = connection.settings_dict
    if connection.vendor == "sqlite":
        return str(settings["NAME"])
    host = settings.get("HOST") or "localhost"
    port = f":{settings['PORT']}" if settings.get("PORT") else ""
    return f"{connection.vendor} {settings['NAME']} on {host}{port}"
