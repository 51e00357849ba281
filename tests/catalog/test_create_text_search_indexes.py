"""create_text_search_indexes makes the trigram indexes migration 0009 could not, without going back."""

from __future__ import annotations

import io

import pytest
from django.core.management import CommandError, call_command
from django.db import connection

from catalog.text_search_indexes import FIELDS, trigram_index_name

pytestmark = pytest.mark.django_db


def _trigram_indexes() -> set[str]:
    with connection.cursor() as cursor:
        cursor.execute("SELECT indexname FROM pg_indexes WHERE tablename = 'catalog_item'")
        return {name for (name,) in cursor.fetchall()} & {trigram_index_name(field) for field in FIELDS}


@pytest.mark.skipif(connection.vendor != "postgresql", reason="trigram indexes are PostgreSQL's")
def test_the_command_creates_the_indexes_that_are_missing_and_keeps_the_others():
    # given: one index missing, as where the extension could not be created at migration time
    with connection.cursor() as cursor:
        cursor.execute(f"DROP INDEX {trigram_index_name('brand')}")
    assert len(_trigram_indexes()) == len(FIELDS) - 1

    out = io.StringIO()
    call_command("create_text_search_indexes", stdout=out)

    assert _trigram_indexes() == {trigram_index_name(field) for field in FIELDS}
    assert "are in place" in out.getvalue()


@pytest.mark.skipif(connection.vendor == "postgresql", reason="the refusal of a database without them")
def test_on_a_database_without_trigram_indexes_the_command_says_so_in_one_line():
    with pytest.raises(CommandError, match=f"the database is {connection.vendor}, which has no trigram indexes"):
        call_command("create_text_search_indexes")
