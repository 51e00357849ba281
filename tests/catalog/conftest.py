"""Catalog fixtures: rate limits are off unless a test turns them on (tests/catalog/test_abuse.py)."""

from __future__ import annotations

import pytest


@pytest.fixture(autouse=True)
def rate_limits_off(settings):
    """Many tests upload from the same test-client address within a minute; only the abuse tests count."""
    settings.RATELIMIT_ENABLE = False
