"""What the index commands say when the index folder cannot be written, instead of a traceback."""

from __future__ import annotations

import contextlib
from collections.abc import Iterator

from django.conf import settings
from django.core.management.base import CommandError


@contextlib.contextmanager
def index_folder_errors() -> Iterator[None]:
    """Turn an OSError from the index folder (a file in its place, no permission, a full disk) into a CommandError."""
    try:
        yield
    except OSError as exc:
        raise CommandError(f"The index folder {settings.INDEX_DIR} cannot be written: {exc.strerror or exc}.") from None
