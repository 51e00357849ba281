"""Admin actions that change what the site serves are offered only to staff who may change it, not to viewers."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from catalog.models import Photo
from recognition.models import RecognizerVersion
from recognition.versions import versions_register_builtin

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer_client(client):
    """A staff user who may only view photos and recognizer versions."""
    viewer = User.objects.create_user("viewer", password="view-only", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_photo", "view_recognizerversion"]))
    client.force_login(viewer)
    return client


def test_a_viewer_cannot_make_a_recognizer_version_live_or_roll_back(viewer_client):
    # given the shipped versions, one live per recognizer, and a second version of type, ready
    versions_register_builtin()
    live = RecognizerVersion.objects.get(name="type", is_live=True)
    other = RecognizerVersion.objects.create(
        name="type", version=live.version + 1, source=live.source, status=live.status, directory=live.directory,
        labels=live.labels, metrics=live.metrics,
    )
    for action in ("make_live", "make_live_even_if_worse", "roll_back"):
        # when a viewer posts the action (the page does not offer it)
        viewer_client.post(
            "/admin/recognition/recognizerversion/", {"action": action, "_selected_action": [other.pk]}
        )
        # then the live version is the one it was
        assert RecognizerVersion.objects.get(name="type", is_live=True).pk == live.pk


def test_a_viewer_cannot_queue_photos_for_re_tagging(viewer_client, tagged_catalog):
    tagged_at = dict(Photo.objects.values_list("pk", "tagged_at")[:2])
    page = viewer_client.get("/admin/catalog/photo/").content.decode()
    assert "retag_selected" not in page

    viewer_client.post("/admin/catalog/photo/", {"action": "retag_selected", "_selected_action": list(tagged_at)})

    assert dict(Photo.objects.filter(pk__in=tagged_at).values_list("pk", "tagged_at")) == tagged_at
