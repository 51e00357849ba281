"""In-process tagging (the embedded defaults): a photo that cannot be tagged fails with the reason; the
import or admin action that queued it carries on, with no traceback and no 500."""

from __future__ import annotations

from pathlib import Path

import pytest

from catalog.models import Item, Photo

pytestmark = pytest.mark.django_db


@pytest.fixture
def photo_whose_file_is_gone(tagged_catalog, tmp_path):
    """A failed imported photo whose stored file is not there (moved away, a volume not mounted)."""
    photo = Photo.objects.order_by("pk").first()
    stored = Path(photo.image.path)
    stored.rename(tmp_path / "away.jpg")
    Photo.objects.filter(pk=photo.pk).update(status=Photo.Status.FAILED, failure_reason="earlier")
    yield photo
    (tmp_path / "away.jpg").rename(stored)


def test_an_import_rerun_goes_past_a_photo_whose_file_is_gone_and_fails_it_with_the_reason(
    photo_whose_file_is_gone, demo_subset, run_import
):
    # given a new image in the folder, sorted after the photo whose file is gone
    last_folder = sorted(path for path in demo_subset.iterdir() if path.is_dir())[-1]
    (last_folder / "zz-new.jpg").write_bytes(next(last_folder.glob("*.jpg")).read_bytes())

    # when the folder is imported again (the failed photo is queued for tagging once more)
    out, _ = run_import(str(demo_subset))

    # then the import ran to the end, and the photo says why it is not tagged
    assert "1 created" in out
    assert Item.objects.filter(import_key=f"{last_folder.name}/zz-new.jpg").exists()
    photo_whose_file_is_gone.refresh_from_db()
    assert photo_whose_file_is_gone.status == Photo.Status.FAILED
    assert "No such file" in photo_whose_file_is_gone.failure_reason


def test_re_tagging_a_photo_whose_file_is_gone_in_the_admin_answers_with_the_list_not_a_500(
    photo_whose_file_is_gone, admin_client, committed
):
    with committed():
        response = admin_client.post(
            "/admin/catalog/photo/", {"action": "retag_selected", "_selected_action": [photo_whose_file_is_gone.pk]}
        )

    assert response.status_code == 302
    photo_whose_file_is_gone.refresh_from_db()
    assert photo_whose_file_is_gone.status == Photo.Status.FAILED
    assert "No such file" in photo_whose_file_is_gone.failure_reason
