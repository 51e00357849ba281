"""Shared by the import_catalog tests."""

from __future__ import annotations

from pathlib import Path


def first_relative(root: Path) -> str:
    """The first image under `root`, as the import names it (its path relative to `root`)."""
    return sorted(root.glob("*/*.jpg"))[0].relative_to(root).as_posix()
