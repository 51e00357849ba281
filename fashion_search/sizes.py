"""Sizes as messages state them, so that one limit reads the same wherever it is enforced."""

from __future__ import annotations


def megabytes(size_bytes: int) -> str:
    """10 MB, 0.5 MB: three significant digits keep a tiny test limit from reading as 0."""
    return f"{size_bytes / (1024 * 1024):.3g}"
