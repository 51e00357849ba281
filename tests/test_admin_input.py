"""The admin answers malformed addresses and selections with a 400 and a reason, never a 500, and changes nothing."""

from __future__ import annotations

import pytest

from catalog.models import Item
from recognition.models import RecognizerVersion
from recognition.versions import versions_register_builtin

pytestmark = pytest.mark.django_db


@pytest.mark.parametrize(
    "url",
    [
        "/admin/catalog/photo/?status=%00",
        "/admin/catalog/item/?name=%00",
        "/admin/recognition/recognizerversion/?name=%00",
        "/admin/autocomplete/?term=%00&app_label=catalog&model_name=look&field_name=items",
        "/admin/catalog/item/?%00=1",
    ],
)
def test_a_null_character_in_an_admin_address_is_a_400_saying_so(admin_client, url):
    response = admin_client.get(url)
    assert response.status_code == 400
    assert response.content.decode() == "Null characters are not allowed in the address."


@pytest.mark.parametrize("selected", ["abc", "1.5", "\x00", "9223372036854775808", "٣", "9" * 5000])
@pytest.mark.parametrize(
    ("changelist", "action"),
    [("/admin/catalog/item/", "delete_selected"), ("/admin/recognition/recognizerversion/", "roll_back")],
)
def test_an_admin_action_on_a_selection_that_is_not_row_numbers_is_a_400_and_changes_nothing(
    admin_client, changelist, action, selected
):
    item = Item.objects.create(name="Coat")
    response = admin_client.post(
        changelist, {"action": action, "_selected_action": [str(item.pk), selected], "index": 0, "post": "yes"}
    )
    assert response.status_code == 400
    assert "selection holds something other than row numbers" in response.content.decode()
    assert Item.objects.filter(pk=item.pk).exists()


def test_an_admin_action_on_row_numbers_still_runs(admin_client):
    item = Item.objects.create(name="Coat")
    response = admin_client.post(
        "/admin/catalog/item/", {"action": "delete_selected", "_selected_action": [str(item.pk)], "post": "yes"}
    )
    assert response.status_code == 302
    assert not Item.objects.exists()


def test_making_two_versions_of_one_recognizer_live_at_once_is_refused(admin_client):
    versions_register_builtin()
    live = RecognizerVersion.objects.get(name="type", is_live=True)
    other = RecognizerVersion.objects.create(
        name="type", version=live.version + 1, status=RecognizerVersion.Status.READY, directory=live.directory
    )
    response = admin_client.post(
        "/admin/recognition/recognizerversion/",
        {"action": "make_live_even_if_worse", "_selected_action": [str(live.pk), str(other.pk)]},
        follow=True,
    )
    assert "Select one version per recognizer to make live." in response.content.decode()
    assert RecognizerVersion.objects.get(name="type", is_live=True) == live


@pytest.mark.parametrize("item_id", ["9223372036854775808", "9" * 5000])
def test_a_look_with_an_item_number_that_cannot_exist_is_a_form_error(admin_client, item_id):
    from catalog.models import Look

    coat = Item.objects.create(name="Coat")
    response = admin_client.post("/admin/catalog/look/add/", {"name": "Office", "items": [str(coat.pk), item_id]})
    assert response.status_code == 200
    assert "is not a valid value" in response.content.decode()
    assert not Look.objects.exists()


def test_a_malformed_body_to_an_admin_page_is_still_djangos_400_not_an_empty_form(admin_user):
    from django.test import Client

    client = Client(enforce_csrf_checks=True, raise_request_exception=False)
    client.force_login(admin_user)
    response = client.post(
        "/admin/catalog/item/add/", data=b"abc", content_type="multipart/form-data; boundary=", HTTP_X_CSRFTOKEN="x"
    )
    assert response.status_code == 400
    assert not Item.objects.exists()
