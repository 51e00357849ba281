"""A photo's file goes with it: deleting a photo or an item, or replacing its image, deletes the file
once the change commits; a file another photo still names stays."""

from __future__ import annotations

from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.db import transaction
from django.urls import reverse

from catalog.models import Item, Photo
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def media_files(settings) -> set[str]:
    root = Path(settings.MEDIA_ROOT)
    return {path.relative_to(root).as_posix() for path in root.rglob("*") if path.is_file()}


def test_deleting_items_in_the_admin_deletes_their_photo_files(tagged_catalog, settings, admin_client, committed):
    items = tagged_catalog[:3]
    names = set(Photo.objects.filter(item__in=items).values_list("image", flat=True))
    kept = set(Photo.objects.exclude(item__in=items).values_list("image", flat=True))
    assert names and names <= media_files(settings)

    with committed():
        response = admin_client.post(
            reverse("admin:catalog_item_changelist"),
            {"action": "delete_selected", "_selected_action": [item.pk for item in items], "post": "yes"},
        )

    assert response.status_code == 302
    assert not names & media_files(settings)  # no longer served under /media/
    assert kept <= media_files(settings)


def test_replacing_a_photos_image_deletes_the_old_file(tagged_catalog, settings, admin_client, committed):
    photo = Photo.objects.order_by("pk").first()
    old = photo.image.name
    with committed():
        response = admin_client.post(
            reverse("admin:catalog_photo_change", args=[photo.pk]),
            {
                "item": photo.item_id,
                "image": SimpleUploadedFile("new.jpg", jpeg_bytes(colour="red"), content_type="image/jpeg"),
                "tags-TOTAL_FORMS": "0", "tags-INITIAL_FORMS": "0",
            },
        )
    assert response.status_code == 302
    photo.refresh_from_db()
    assert photo.image.name in media_files(settings)
    assert old not in media_files(settings)


def test_a_file_another_photo_still_names_is_kept(tagged_catalog, settings, committed):
    photo, other = Photo.objects.order_by("pk")[:2]
    Photo.objects.filter(pk=other.pk).update(image=photo.image.name)  # two photos on one file

    with committed():
        photo.delete()

    assert Photo.objects.get(pk=other.pk).image.name in media_files(settings)


def test_a_deletion_rolled_back_keeps_the_file(tagged_catalog, settings, django_capture_on_commit_callbacks):
    photo = Photo.objects.order_by("pk").first()
    with django_capture_on_commit_callbacks(execute=True):
        with pytest.raises(RuntimeError), transaction.atomic():
            Item.objects.get(pk=photo.item_id).delete()
            raise RuntimeError("the request failed after the delete")
    assert Photo.objects.filter(pk=photo.pk).exists()
    assert photo.image.name in media_files(settings)
