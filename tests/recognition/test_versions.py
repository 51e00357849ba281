"""Recognizer versions: trained from a zip or hand-set catalog tags, with held-out metrics and reports."""

from __future__ import annotations

import io
import zipfile

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from catalog.models import Photo
from catalog.services.tagging import photo_tag_set_by_hand
from catalog.services.training_export import recognizer_train_from_hand_tags
from recognition.models import RecognizerVersion
from recognition.reports import confusion_svg
from recognition.services import recognizers_live
from recognition.versions import (
    version_create,
    version_make_live,
    versions_register_builtin,
)
from tests.conftest import demo_photos
from tests.recognition.version_helpers import hats_and_shoes_zip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("recognizer_dir")]


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


def test_hand_set_catalog_tags_are_training_data(tagged_catalog, committed, settings):
    # The demo import gave every photo a hand-set type; pretend a merchant tagged pattern by hand too.
    for index, photo in enumerate(Photo.objects.order_by("pk")):
        photo_tag_set_by_hand(photo=photo, attribute="pattern", value="plain" if index % 2 else "striped")
    with committed():
        version = recognizer_train_from_hand_tags(attribute="pattern")
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.READY, version.failure_reason
    assert version.source == RecognizerVersion.Source.CATALOG
    assert version.metrics["train_samples"] + version.metrics["evaluation"]["samples"] == 20
    # and the photos exported for it are gone once it is trained: the head is what is kept
    assert not list((settings.RECOGNIZER_DIR / "exports").rglob("*.jpg"))


def test_training_from_hand_set_tags_twice_within_a_second_trains_two_versions(tagged_catalog, committed, monkeypatch):
    # given: hand-set patterns, and a clock that does not move between the two requests
    for index, photo in enumerate(Photo.objects.order_by("pk")):
        photo_tag_set_by_hand(photo=photo, attribute="pattern", value="plain" if index % 2 else "striped")
    now = timezone.now()
    monkeypatch.setattr("catalog.services.training_export.timezone.now", lambda: now)
    # when
    with committed():
        versions = [recognizer_train_from_hand_tags(attribute="pattern") for _ in range(2)]
    # then: each exported its own photos and trained
    for version in versions:
        version.refresh_from_db()
    assert [version.status for version in versions] == [RecognizerVersion.Status.READY] * 2
    assert versions[0].data_dir != versions[1].data_dir


def test_a_zip_of_a_single_label_fails_instead_of_scoring_a_perfect_top1(committed):
    # one label: every prediction is right, so its 1.0 would measure nothing
    def hats_only(archive: zipfile.ZipFile) -> None:
        for photo in demo_photos(per_type=5):
            if photo.parent.name == "hat":
                archive.write(photo, f"hat/{photo.name}")

    with committed():
        version = version_create(name="headwear", source=RecognizerVersion.Source.ZIP, upload=zip_upload(hats_only))
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.FAILED
    assert "at least two labels" in version.failure_reason


@pytest.mark.parametrize("attribute", ["zzz", "../../x", "/tmp/x", "\x00"])
def test_training_from_hand_set_tags_of_an_attribute_that_does_not_exist_says_so(admin_client, attribute):
    response = admin_client.post("/admin/catalog/photo/train-from-hand-tags/", {"attribute": attribute}, follow=True)
    assert response.status_code == 200
    assert "to train; choose one of type, pattern, colour, style" in response.content.decode()
    assert not RecognizerVersion.objects.exists()


def test_admin_shows_metrics_and_the_confusion_matrix_picture(admin_client):
    versions_register_builtin()
    version = RecognizerVersion.objects.get(name="type")
    html = admin_client.get(f"/admin/recognition/recognizerversion/{version.pk}/change/").content.decode()
    assert "<svg" in html and "Confusion matrix" in html and "precision" in html


def test_the_confusion_svg_escapes_labels_and_draws_a_cell_per_pair():
    svg = confusion_svg(["<a>", "b"], [[3, 1], [0, 4]])
    assert "&lt;a&gt;" in svg and "<a>" not in svg
    assert svg.count("<rect") == 4


def zip_upload(write) -> SimpleUploadedFile:
    """A zip built by `write(archive)`, uploaded as a merchant would."""
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        write(archive)
    return SimpleUploadedFile("upload.zip", buffer.getvalue(), content_type="application/zip")


def unreadable_images(archive: zipfile.ZipFile) -> None:
    for label in ("a", "b"):
        for index in range(4):
            archive.writestr(f"{label}/{index}.jpg", b"not an image")


def test_a_zip_whose_images_are_all_unreadable_fails_with_a_reason(committed):
    with committed():
        version = version_create(name="junk", source=RecognizerVersion.Source.ZIP, upload=zip_upload(unreadable_images))
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.FAILED
    assert "could be read" in version.failure_reason
    assert "/tmp" not in version.failure_reason and "recognizer-" not in version.failure_reason


def test_a_zip_with_a_damaged_photo_fails_with_a_reason_instead_of_staying_training(committed):
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for photo in demo_photos(per_type=3):
            if photo.parent.name in ("hat", "shoes"):
                archive.write(photo, f"{photo.parent.name}/{photo.name}")
    data = bytearray(buffer.getvalue())
    data[data.find(b"\xff\xd8\xff") + 200] ^= 0xFF  # corrupt the first photo's bytes: its CRC no longer matches
    upload = SimpleUploadedFile("damaged.zip", bytes(data), content_type="application/zip")
    with committed():
        version = version_create(name="damaged", source=RecognizerVersion.Source.ZIP, upload=upload)
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.FAILED
    assert "could not be unpacked" in version.failure_reason and "CRC" in version.failure_reason


def test_an_unexpected_error_while_training_fails_the_version_without_server_paths(committed, monkeypatch, tmp_path):
    workspace = tmp_path / "recognizer-abc"
    workspace.mkdir()

    def broken_train_head(*args, **kwargs):
        raise ValueError(f"boom in {workspace}/hat/x.jpg")

    monkeypatch.setattr("recognition.versions.train_head", broken_train_head)
    monkeypatch.setattr("recognition.versions.tempfile.mkdtemp", lambda prefix: str(workspace))
    with committed():
        version = version_create(name="headwear", source=RecognizerVersion.Source.ZIP, upload=hats_and_shoes_zip())
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.FAILED
    assert "ValueError: boom in hat/x.jpg" in version.failure_reason
    assert "recognizer-abc" not in version.failure_reason


def test_hitting_the_time_limit_fails_the_version_with_a_reason(committed, monkeypatch):
    def too_slow(*args, **kwargs):
        raise SoftTimeLimitExceeded()

    monkeypatch.setattr("recognition.versions.train_head", too_slow)
    with committed():
        version = version_create(name="headwear", source=RecognizerVersion.Source.ZIP, upload=hats_and_shoes_zip())
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.FAILED
    assert "time limit" in version.failure_reason


def test_the_admin_upload_of_an_unreadable_zip_ends_normally_and_records_the_failure(
    admin_client, django_capture_on_commit_callbacks
):
    upload = zip_upload(unreadable_images)
    with django_capture_on_commit_callbacks(execute=True):
        response = admin_client.post(
            "/admin/recognition/recognizerversion/add/", {"name": "junk", "source": "zip", "upload": upload}
        )
    assert response.status_code == 302
    version = RecognizerVersion.objects.get(name="junk")
    assert version.status == RecognizerVersion.Status.FAILED and version.failure_reason


@pytest.mark.parametrize(
    ("fields", "error"),
    [
        ({"name": "scenes", "source": "zip"}, "Choose the zip to train from"),
        ({"name": "scenes", "source": "zip", "upload": "not a zip"}, "This file is not a zip archive."),
        ({"name": "scenes", "source": "folder"}, "Enter the folder&#x27;s full path on the server."),
        ({"name": "scenes", "source": "folder", "data_dir": "photos"}, "Enter a full path, starting with /."),
        ({"name": "scenes", "source": "folder", "data_dir": "/tmp", "upload": "x"}, "A zip is only read when"),
        ({"name": "scenes", "source": "builtin", "data_dir": "/tmp"}, "Select a valid choice."),
        ({"name": "scenes", "source": "catalog", "data_dir": "/tmp"}, "Select a valid choice."),
        ({"name": "fashion", "source": "folder", "data_dir": "/tmp"}, "is reserved"),
        ({"name": "scenes", "source": "folder", "data_dir": "/etc"}, "Only folders under"),
    ],
    ids=[
        "zip, none",
        "zip, not a zip",
        "folder, none",
        "folder, relative",
        "folder and a zip",
        "builtin",
        "catalog",
        "reserved name",
        "folder outside TRAINING_FOLDERS_ROOT",
    ],
)
def test_the_admin_refuses_a_version_that_could_only_fail_in_the_worker(admin_client, fields, error):
    if "upload" in fields:
        fields = fields | {"upload": SimpleUploadedFile("x.zip", fields["upload"].encode())}
    response = admin_client.post("/admin/recognition/recognizerversion/add/", fields)
    assert response.status_code == 200  # the form again, with the error
    assert error in response.content.decode()
    assert not RecognizerVersion.objects.exists()


def test_a_zip_made_by_macos_finder_trains_on_its_photos_only(committed):
    def finder_zip(archive: zipfile.ZipFile) -> None:
        for photo in demo_photos(per_type=5):
            if photo.parent.name in ("hat", "shoes"):
                archive.write(photo, f"{photo.parent.name}/{photo.name}")
                fork = f"__MACOSX/{photo.parent.name}/._{photo.name}"
                archive.writestr(fork, b"\x00\x05\x16\x07" + b"\0" * 100)

    with committed():
        version = version_create(name="finder", source=RecognizerVersion.Source.ZIP, upload=zip_upload(finder_zip))
    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.READY, version.failure_reason
    assert version.labels == ["hat", "shoes"]
    assert version.metrics["train_samples"] + version.metrics["evaluation"]["samples"] == 10


def test_a_folder_on_the_server_is_accepted_under_the_training_root_and_not_through_a_link_out(
    admin_client, settings, tmp_path
):
    settings.TRAINING_FOLDERS_ROOT = tmp_path / "training"
    (tmp_path / "training" / "scenes").mkdir(parents=True)
    (tmp_path / "training" / "escape").symlink_to("/etc")
    add = "/admin/recognition/recognizerversion/add/"
    form = {"name": "scenes", "source": "folder"}

    refused = admin_client.post(add, form | {"data_dir": str(tmp_path / "training" / "escape")})
    assert refused.status_code == 200 and "Only folders under" in refused.content.decode()

    accepted = admin_client.post(add, form | {"data_dir": str(tmp_path / "training" / "scenes")})
    assert accepted.status_code == 302
    assert RecognizerVersion.objects.get(name="scenes").data_dir == str(tmp_path / "training" / "scenes")


def test_a_folder_version_outside_the_training_root_fails_in_the_worker_without_reading_it(settings, tmp_path):
    # given a version recorded before folders were held to the root (or written around the form)
    from recognition.versions import version_train

    settings.TRAINING_FOLDERS_ROOT = tmp_path / "training"
    version = RecognizerVersion.objects.create(
        name="scenes", version=1, source=RecognizerVersion.Source.FOLDER, data_dir="/etc"
    )
    # when it is trained, then it fails saying why, and lists nothing of the folder
    version = version_train(version_id=version.pk)
    assert version.status == RecognizerVersion.Status.FAILED
    assert version.failure_reason.startswith("Only folders under") and "passwd" not in version.failure_reason
