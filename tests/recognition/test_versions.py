"""Recognizer versions: train from a zip or hand-set catalog tags, held-out metrics, make live, roll back."""

from __future__ import annotations

import io
import zipfile

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Photo
from catalog.services.tagging import photo_tag_set_by_hand
from catalog.services.training_export import recognizer_train_from_hand_tags
from recognition.models import RecognizerVersion
from recognition.reports import confusion_svg
from recognition.services import recognizers_live
from recognition.versions import (
    WorseThanLive,
    version_create,
    version_make_live,
    version_roll_back,
    versions_register_builtin,
)
from tests.conftest import demo_photos

pytestmark = pytest.mark.django_db


@pytest.fixture(autouse=True)
def recognizer_dir(settings, tmp_path):
    settings.RECOGNIZER_DIR = tmp_path / "recognizers"


def hats_and_shoes_zip() -> SimpleUploadedFile:
    """A zip with a folder per label, as a merchant would upload for a new recognizer."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for photo in demo_photos(per_type=5):
            if photo.parent.name in ("hat", "shoes"):
                archive.write(photo, f"headwear-or-feet/{photo.parent.name}/{photo.name}")
    return SimpleUploadedFile("mine.zip", buffer.getvalue(), content_type="application/zip")


def test_a_new_recognizer_trains_from_a_zip_and_is_evaluated_on_held_out_photos(committed):
    with committed():
        version = version_create(name="headwear", source=RecognizerVersion.Source.ZIP, upload=hats_and_shoes_zip())
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.READY, version.failure_reason
    assert version.labels == ["hat", "shoes"]
    evaluation = version.metrics["evaluation"]
    assert evaluation["samples"] == 2  # one of five per label held out
    assert version.metrics["train_samples"] == 8
    assert version.progress == 1.0
    assert "headwear" not in recognizers_live()  # trained is not live
    version_make_live(version=version)
    assert "headwear" in recognizers_live()


def test_a_zip_that_escapes_its_folder_fails_with_a_reason(committed):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("../../evil/a.jpg", b"x")
    with committed():
        version = version_create(
            name="evil", source=RecognizerVersion.Source.ZIP, upload=SimpleUploadedFile("e.zip", buffer.getvalue())
        )
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.FAILED
    assert "outside" in version.failure_reason


def test_a_worse_version_is_not_made_live_silently_and_rollback_restores_the_previous_one():
    versions_register_builtin()
    builtin = RecognizerVersion.objects.get(name="type", is_live=True)
    worse = RecognizerVersion.objects.create(
        name="type",
        version=builtin.version + 1,
        status=RecognizerVersion.Status.READY,
        directory=builtin.directory,
        metrics={"evaluation": {"top1": 0.5}},
    )
    with pytest.raises(WorseThanLive, match="below the live"):
        version_make_live(version=worse)
    assert RecognizerVersion.objects.get(name="type", is_live=True) == builtin

    version_make_live(version=worse, allow_worse=True)
    assert RecognizerVersion.objects.get(name="type", is_live=True) == worse
    assert version_roll_back(name="type") == builtin
    assert RecognizerVersion.objects.get(name="type", is_live=True) == builtin


def test_hand_set_catalog_tags_are_training_data(tagged_catalog, committed):
    # The demo import gave every photo a hand-set type; pretend a merchant tagged pattern by hand too.
    for index, photo in enumerate(Photo.objects.order_by("pk")):
        photo_tag_set_by_hand(photo=photo, attribute="pattern", value="plain" if index % 2 else "striped")
    with committed():
        version = recognizer_train_from_hand_tags(attribute="pattern")
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.READY, version.failure_reason
    assert version.source == RecognizerVersion.Source.CATALOG
    assert version.metrics["train_samples"] + version.metrics["evaluation"]["samples"] == 20


def test_admin_shows_metrics_and_the_confusion_matrix_picture(admin_client):
    versions_register_builtin()
    version = RecognizerVersion.objects.get(name="type")
    html = admin_client.get(f"/admin/recognition/recognizerversion/{version.pk}/change/").content.decode()
    assert "<svg" in html and "Confusion matrix" in html and "precision" in html


def test_the_confusion_svg_escapes_labels_and_draws_a_cell_per_pair():
    svg = confusion_svg(["<a>", "b"], [[3, 1], [0, 4]])
    assert "&lt;a&gt;" in svg and "<a>" not in svg
    assert svg.count("<rect") == 4
