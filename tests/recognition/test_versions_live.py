"""Recognizer versions going live: refused when worse, narrower or on another backbone; roll-back; deletion."""

from __future__ import annotations

import shutil
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import pytest
from django.utils import timezone

from recognition.models import RecognizerVersion
from recognition.recognizers import BUILTIN_ARTIFACTS_DIR, load_head, load_metrics, save_head
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
from tests.recognition.version_helpers import hats_and_shoes_zip

pytestmark = [pytest.mark.django_db, pytest.mark.usefixtures("recognizer_dir")]


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
