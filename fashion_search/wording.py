"""Counts as messages state them: "1 photo", "30 seconds"."""

from __future__ import annotations


def counted(count: int, noun: str) -> str:
    """`count` and `noun`, the noun with an s unless the count is one (every noun the app counts takes one)."""
    return f"{count} {noun}" if count == 1 else f"{count} {noun}s"
