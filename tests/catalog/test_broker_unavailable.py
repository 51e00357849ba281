"""With the task broker unreachable, a merchant's saves stand, nothing answers a 500, and nothing is lost.

Tasks are sent once the save has committed; an error raised there answered the committed save with a
500, skipped the deletion's other callbacks (the photo's file stayed served) and left photos pending
for good. Real commits here (`transaction=True`): the callbacks run inside the request, as on a server.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.core.management import CommandError, call_command
from kombu.exceptions import OperationalError as BrokerUnavailable

from catalog import tasks
from catalog.models import Item, Photo
from catalog.services.index import index_rebuild
from recognition import tasks as recognition_tasks
from recognition.services import index_store_get
from tests.conftest import demo_photos

pytestmark = pytest.mark.django_db(transaction=True)

REFUSED = "Error 111 connecting to 127.0.0.1:6379. Connection refused."


@pytest.fixture
def broker_down(monkeypatch):
    """Tasks are sent to a broker (as with REDIS_URL), which refuses every one."""

    def refuse(*args, **kwargs):
        raise BrokerUnavailable(REFUSED)

    tasks.tag_photo.app.conf.task_always_eager = False  # the autouse `eager_tasks` fixture sets it back
    for task in (tasks.tag_photo, tasks.sync_index, tasks.rebuild_index, recognition_tasks.train_version):
        monkeypatch.setattr(task, "delay", refuse)
        monkeypatch.setattr(task, "apply_async", refuse)


def photo_added(admin_client, item: Item):
    """The admin's "add photo" form, sent with the item and a photo and no tags."""
    form = {"item": item.pk, "image": photo_upload(), "tags-TOTAL_FORMS": "0", "tags-INITIAL_FORMS": "0"}
    return admin_client.post("/admin/catalog/photo/add/", form)


def photo_upload(number: int = 0) -> SimpleUploadedFile:
    return SimpleUploadedFile("hat.jpg", demo_photos(per_type=1)[number].read_bytes(), content_type="image/jpeg")


def test_a_photo_saved_while_the_broker_is_down_is_kept_and_failed_with_the_reason(admin_client, broker_down):
    item = Item.objects.create(name="Wool hat")
    # when the merchant adds a photo
    response = photo_added(admin_client, item)
    # then the save stands, and the photo says why it is not tagged, for "Retry failed photos"
    assert response.status_code == 302
    photo = Photo.objects.get(item=item)
    assert photo.status == Photo.Status.FAILED
    assert photo.failure_reason.startswith("tagging could not be queued, the task broker is unreachable")


def test_retry_failed_photos_tags_them_once_the_broker_is_back(admin_client, broker_down, monkeypatch):
    item = Item.objects.create(name="Wool hat")
    photo_added(admin_client, item)
    monkeypatch.undo()  # the broker is back (and tasks run in-process again)
    tasks.tag_photo.app.conf.task_always_eager = True

    response = admin_client.post("/admin/catalog/photo/retry-failed/")

    assert response.status_code == 302
    assert Photo.objects.get(item=item).status == Photo.Status.TAGGED


def test_a_photo_deleted_while_the_broker_is_down_leaves_search_and_disk(admin_client, broker_down):
    # given a tagged, indexed photo
    item = Item.objects.create(name="Wool hat")
    photo = Photo.objects.create(item=item, image=photo_upload())
    tasks.tag_photo.run(photo.pk)
    index_rebuild()
    stored = Path(photo.image.path)
    assert photo.pk in index_store_get().load().ids()
    # when the merchant deletes it
    response = admin_client.post(f"/admin/catalog/photo/{photo.pk}/delete/", {"post": "yes"})
    # then no 500: the index no longer holds it, and its file is gone from the media folder
    assert response.status_code == 302
    assert not Photo.objects.filter(pk=photo.pk).exists()
    assert photo.pk not in index_store_get().load().ids()
    assert not stored.exists()


def test_the_rebuild_button_says_the_broker_is_unreachable(admin_client, broker_down):
    response = admin_client.post("/admin/catalog/photo/rebuild-index/", follow=True)
    assert response.status_code == 200
    assert "The rebuild could not be queued: the task broker is unreachable" in response.content.decode()


@pytest.fixture
def broker_address_unreachable():
    """A real broker address where nothing listens (with a password, which no message may show)."""
    app = tasks.tag_photo.app
    app.conf.task_always_eager = False  # the autouse `eager_tasks` fixture sets it back
    previous = app.conf.broker_url
    app.conf.broker_url = "redis://:secret@127.0.0.1:1/0"
    yield
    app.conf.broker_url = previous


def test_an_import_refuses_to_start_while_the_broker_cannot_be_reached(demo_subset, broker_address_unreachable):
    with pytest.raises(CommandError, match=r"cannot reach the task broker at redis://:\*\*@127.0.0.1:1/0"):
        call_command("import_catalog", str(demo_subset))
    assert not Item.objects.exists()


def test_re_tagging_selected_photos_while_the_broker_cannot_be_reached_says_nothing_was_queued(
    admin_client, broker_address_unreachable
):
    item = Item.objects.create(name="Wool hat")
    photo = Photo.objects.create(item=item, image=photo_upload(), status=Photo.Status.FAILED, failure_reason="x")
    for post in (
        lambda: admin_client.post(
            "/admin/catalog/photo/", {"action": "retag_selected", "_selected_action": [photo.pk]}, follow=True
        ),
        lambda: admin_client.post("/admin/catalog/photo/retry-failed/", follow=True),
    ):
        page = post().content.decode()
        assert "Nothing was queued: cannot reach the task broker at redis://:**@127.0.0.1:1/0" in page
        assert Photo.objects.get(pk=photo.pk).failure_reason == "x"  # as it was


def test_a_recognizer_version_added_while_the_broker_is_down_fails_with_the_reason(broker_down, demo_subset):
    from recognition.models import RecognizerVersion
    from recognition.versions import version_create

    version = version_create(name="type", source=RecognizerVersion.Source.FOLDER, data_dir=str(demo_subset))

    version.refresh_from_db()
    assert version.status == RecognizerVersion.Status.FAILED
    assert version.failure_reason.startswith("training could not be queued, the task broker is unreachable")
