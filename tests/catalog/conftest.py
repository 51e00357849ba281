"""Catalog fixtures: rate limits off unless a test turns them on (test_abuse.py), import_catalog runners."""

from __future__ import annotations

import io

import pytest
from django.core.management import call_command


@pytest.fixture(autouse=True)
def rate_limits_off(settings):
    """Many tests upload from the same test-client address within a minute; only the abuse tests count."""
    settings.RATELIMIT_ENABLE = False


@pytest.fixture
def run_import(committed):
    """Run import_catalog with these arguments as committed work; returns what it printed (out, err)."""

    def run(*args: str) -> tuple[str, str]:
        out, err = io.StringIO(), io.StringIO()
        with committed():
            call_command("import_catalog", *args, stdout=out, stderr=err)
        return out.getvalue(), err.getvalue()

    return run


@pytest.fixture
def item_imported_with_csv(demo_subset, tmp_path, run_import):
    """Import the demo subset with a CSV whose text has `{file}` for its first image; that image's item."""
    from catalog.models import Item
    from tests.catalog.import_helpers import first_relative

    def run(text: str) -> Item:
        relative = first_relative(demo_subset)
        csv_path = tmp_path / "items.csv"
        csv_path.write_text(text.replace("{file}", relative))
        run_import(str(demo_subset), "--csv", str(csv_path))
        return Item.objects.get(import_key=relative)

    return run
