"""A merchant's training zip is kept where the site never serves it."""

from __future__ import annotations

import pytest

from recognition.models import RecognizerVersion
from recognition.versions import version_create
from tests.recognition.test_versions import hats_and_shoes_zip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("recognizer_dir")]


def test_a_training_zip_is_stored_outside_the_served_media_and_cannot_be_downloaded(committed, settings, client):
    # given a version trained from an uploaded zip, on a site that serves MEDIA_ROOT
    settings.SERVE_MEDIA = True
    with committed():
        version = version_create(name="headwear", source=RecognizerVersion.Source.ZIP, upload=hats_and_shoes_zip())

    # then the zip lies in TRAINING_UPLOADS_DIR, not under MEDIA_ROOT
    stored = version.upload.path
    assert stored.startswith(str(settings.TRAINING_UPLOADS_DIR.resolve()))
    assert not list(settings.MEDIA_ROOT.rglob("*.zip"))
    # and its name under the media URL leads nowhere
    assert client.get(f"/{settings.MEDIA_URL}{version.upload.name}").status_code == 404
