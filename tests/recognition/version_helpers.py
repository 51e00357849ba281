"""Uploads that the recognizer version tests share."""

from __future__ import annotations

import io
import zipfile

from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import demo_photos


def hats_and_shoes_zip() -> SimpleUploadedFile:
    """A zip with a folder per label, as a merchant would upload for a new recognizer."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for photo in demo_photos(per_type=5):
            if photo.parent.name in ("hat", "shoes"):
                archive.write(photo, f"headwear-or-feet/{photo.parent.name}/{photo.name}")
    return SimpleUploadedFile("mine.zip", buffer.getvalue(), content_type="application/zip")
