"""Admin actions that change what the site serves are offered only to staff who may change it, not to viewers."""

from __future__ import annotations

import pytest
from django.contrib.auth.models import Permission, User

from catalog.models import Photo
from recognition.models import RecognizerVersion
from recognition.versions import version_make_live, versions_register_builtin

pytestmark = pytest.mark.django_db


@pytest.fixture
def viewer_client(client):
    """A staff user who may only view photos and recognizer versions."""
    viewer = User.objects.create_user("viewer", password="view-only", is_staff=True)
    viewer.user_permissions.set(Permission.objects.filter(codename__in=["view_photo", "view_recognizerversion"]))
    client.force_login(viewer)
    return client


@pytest.mark.parametrize("action", ["make_live", "make_live_even_if_worse", "roll_back"])
def test_a_viewer_cannot_change_which_recognizer_version_is_live(viewer_client, action):
    # given type's shipped version, once live, and a second version live since
    versions_register_builtin()
    first = RecognizerVersion.objects.get(name="type", is_live=True)
    second = RecognizerVersion.objects.create(
        name="type", version=first.version + 1, source=first.source, status=first.status,
        directory=first.directory, labels=first.labels, metrics=first.metrics,
    )
    version_make_live(version=second, allow_worse=True)
    # when a viewer posts the action on the first version (which an editor's post would make live again)
    viewer_client.post("/admin/recognition/recognizerversion/", {"action": action, "_selected_action": [first.pk]})
    # then the live version is still the second
    assert RecognizerVersion.objects.get(name="type", is_live=True).pk == second.pk


def test_a_viewer_cannot_queue_photos_for_re_tagging(viewer_client, tagged_catalog):
    tagged_at = dict(Photo.objects.values_list("pk", "tagged_at")[:2])
    page = viewer_client.get("/admin/catalog/photo/").content.decode()
    assert "retag_selected" not in page

    viewer_client.post("/admin/catalog/photo/", {"action": "retag_selected", "_selected_action": list(tagged_at)})

    assert dict(Photo.objects.filter(pk__in=tagged_at).values_list("pk", "tagged_at")) == tagged_at
