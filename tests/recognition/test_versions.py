"""Recognizer versions: train from a zip or hand-set catalog tags, held-out metrics, make live, roll back."""

from __future__ import annotations

import io
import shutil
import zipfile
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from celery.exceptions import SoftTimeLimitExceeded
from django.core.files.uploadedfile import SimpleUploadedFile
from django.utils import timezone

from catalog.models import Photo
from catalog.services.tagging import photo_tag_set_by_hand
from catalog.services.training_export import recognizer_train_from_hand_tags
from recognition.models import RecognizerVersion
from recognition.recognizers import BUILTIN_ARTIFACTS_DIR, load_head, load_metrics, save_head
from recognition.reports import confusion_svg
from recognition.services import recognizers_live
from recognition.versions import (
    FewerLabelsThanLive,
    TrainedOnAnotherBackbone,
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


def test_a_version_that_knows_fewer_labels_than_the_live_one_is_not_made_live_silently(committed):
    # given the shipped type recognizer live, and a type version trained on hats and shoes only,
    # which scores perfectly on its own held-out hats and shoes
    versions_register_builtin()
    builtin = RecognizerVersion.objects.get(name="type", is_live=True)
    with committed():
        narrow = version_create(name="type", source=RecognizerVersion.Source.ZIP, upload=hats_and_shoes_zip())
    narrow.refresh_from_db()
    assert narrow.status == RecognizerVersion.Status.READY, narrow.failure_reason

    # when it is made live, it is refused, naming what the shop would lose
    with pytest.raises(FewerLabelsThanLive, match=r"learned 2 of the live version's 10 labels \(missing: .*dress"):
        version_make_live(version=narrow)
    assert RecognizerVersion.objects.get(name="type", is_live=True) == builtin

    # and only an explicit choice puts it live
    version_make_live(version=narrow, allow_worse=True)
    assert RecognizerVersion.objects.get(name="type", is_live=True) == narrow


def test_a_version_trained_on_another_backbone_is_never_made_live(tmp_path):
    # given a ready version whose head was trained on another backbone's embedding
    versions_register_builtin()
    builtin = RecognizerVersion.objects.get(name="type", is_live=True)
    shipped = load_head(Path(builtin.directory))
    save_head(replace(shipped, backbone_version="efficientnet-lite0:other"), tmp_path / "old")
    stale = RecognizerVersion.objects.create(
        name="type",
        version=builtin.version + 1,
        status=RecognizerVersion.Status.READY,
        directory=str(tmp_path / "old"),
        metrics={"evaluation": {"top1": 0.99}},
    )

    # when it is made live, even explicitly, it is refused with the reason
    with pytest.raises(TrainedOnAnotherBackbone, match="trained on the backbone efficientnet-lite0:other"):
        version_make_live(version=stale, allow_worse=True)

    # then the shipped version stays live
    assert RecognizerVersion.objects.get(name="type", is_live=True) == builtin


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


def test_without_registered_versions_a_worse_one_is_measured_against_the_shipped_head(tmp_path):
    # given: a production site (setup_demo never ran, so the shipped type head serves with no row),
    # and a version that scored 0.30 on its held-out photos
    directory = tmp_path / "worse"
    shutil.copytree(BUILTIN_ARTIFACTS_DIR / "type", directory)
    metrics = load_metrics(directory)
    worse = RecognizerVersion.objects.create(
        name="type", version=1, status=RecognizerVersion.Status.READY, directory=str(directory),
        metrics=metrics | {"evaluation": metrics["evaluation"] | {"top1": 0.30}},
    )
    # when / then: it is not made live silently
    with pytest.raises(WorseThanLive, match="below the live shipped type recognizer"):
        version_make_live(version=worse)


def test_roll_back_returns_to_the_version_live_before_not_a_shipped_head_that_never_was(tmp_path):
    # given: version 1 live, then version 2; then the shipped heads registered (setup_demo after an upgrade)
    directory = tmp_path / "copy"
    shutil.copytree(BUILTIN_ARTIFACTS_DIR / "type", directory)
    first = RecognizerVersion.objects.create(
        name="type", version=1, status=RecognizerVersion.Status.READY, directory=str(directory),
        made_live_at=timezone.now() - timedelta(days=2),
    )
    RecognizerVersion.objects.create(
        name="type", version=2, status=RecognizerVersion.Status.READY, directory=str(directory),
        made_live_at=timezone.now() - timedelta(days=1), is_live=True,
    )
    versions_register_builtin()
    assert not RecognizerVersion.objects.get(name="type", source=RecognizerVersion.Source.BUILTIN).is_live
    # when / then
    assert version_roll_back(name="type") == first


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


@pytest.fixture
def older_and_live(committed) -> tuple[RecognizerVersion, RecognizerVersion]:
    """Two trained versions of a recognizer, the second live."""
    with committed():
        older, live = (
            version_create(name="headwear", source=RecognizerVersion.Source.ZIP, upload=hats_and_shoes_zip())
            for _ in range(2)
        )
    older.refresh_from_db()
    live.refresh_from_db()
    return older, version_make_live(version=live)


def test_the_live_version_cannot_be_deleted_and_a_deleted_one_takes_its_files_along(admin_client, older_and_live):
    older, live = older_and_live
    url = "/admin/recognition/recognizerversion/{}/delete/"

    # when / then: deleting the live one is refused, and it still serves
    assert admin_client.post(url.format(live.pk), {"post": "yes"}).status_code == 403
    assert "headwear" in recognizers_live()

    # when / then: the older one goes, with its uploaded zip and its head
    files = [Path(older.upload.path), Path(older.directory) / "head.npz"]
    assert all(path.exists() for path in files)
    assert admin_client.post(url.format(older.pk), {"post": "yes"}).status_code == 302
    assert not RecognizerVersion.objects.filter(pk=older.pk).exists()
    assert not any(path.exists() for path in files)


def test_deleting_a_selection_that_holds_the_live_version_deletes_nothing(admin_client, older_and_live):
    older, live = older_and_live
    selected = {"action": "delete_selected", "_selected_action": [older.pk, live.pk]}

    response = admin_client.post("/admin/recognition/recognizerversion/", selected | {"post": "yes"})

    assert response.status_code == 403  # Django refuses the whole selection
    assert RecognizerVersion.objects.count() == 2
    older.refresh_from_db()
    assert Path(older.directory, "head.npz").exists()
