"""Catalog fixtures: rate limits off unless a test turns them on (test_abuse.py), an import_catalog runner."""

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
