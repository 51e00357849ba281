"""The shopper page and the merchant admin."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Item, Photo, Tag
from tests.conftest import demo_photos

pytestmark = pytest.mark.django_db


def test_home_page_offers_camera_and_file_picker(client):
    response = client.get("/")
    assert response.status_code == 200
    html = response.content.decode()
    assert 'accept="image/*"' in html and 'capture="environment"' in html


def test_uploading_a_photo_shows_tags_and_similar_items_with_shop_links(client, tagged_catalog):
    Item.objects.update(shop_url="https://shop.example/p")
    query = demo_photos(per_type=3)[2]  # a dress photo not in the catalog
    response = client.post("/", {"image": SimpleUploadedFile("q.jpg", query.read_bytes())})
    html = response.content.decode()
    assert response.status_code == 200
    assert "Dress" in html
    assert html.count('href="https://shop.example/p"') >= 10


def test_a_non_image_upload_shows_a_readable_message(client):
    response = client.post("/", {"image": SimpleUploadedFile("cv.pdf", b"%PDF-1.4 hello")})
    assert response.status_code == 400
    assert "Not a supported image" in response.content.decode()


@pytest.mark.parametrize(
    ("files", "message"),
    [({}, "Choose a photo to upload."), ({"image": SimpleUploadedFile("q.jpg", b"")}, "The photo is empty (0 bytes)")],
    ids=["no photo", "empty photo"],
)
def test_a_form_without_a_photo_says_whether_none_was_chosen_or_it_was_empty(client, files, message):
    response = client.post("/", files)
    assert response.status_code == 400
    assert message in response.content.decode()


def test_saving_a_photo_in_admin_tags_it(admin_client, committed):
    photo_path = demo_photos(per_type=1)[1]  # a hat
    with committed():
        response = admin_client.post(
            "/admin/catalog/item/add/",
            {
                "name": "Wool hat",
                "currency": "EUR",
                "shop_url": "https://shop.example/hat",
                "photos-TOTAL_FORMS": "1",
                "photos-INITIAL_FORMS": "0",
                "photos-0-image": SimpleUploadedFile("hat.jpg", photo_path.read_bytes(), content_type="image/jpeg"),
            },
        )
    assert response.status_code == 302, response.content.decode()[:2000]
    photo = Photo.objects.get(item__name="Wool hat")
    assert photo.status == Photo.Status.TAGGED
    assert photo.tags.filter(attribute="type").first().value == "hat"


def test_admin_shows_tagging_counts_and_needs_login(client, admin_client, tagged_catalog):
    assert client.get("/admin/catalog/photo/").status_code == 302
    html = admin_client.get("/admin/catalog/photo/").content.decode()
    assert "Tagged: 20" in html and "Failed: 0" in html


def test_a_tag_typed_in_the_admin_is_hand_set_and_replaces_the_models_tags(admin_client, tagged_catalog):
    photo = Photo.objects.first()
    model_value = photo.tags.filter(attribute="pattern", source="model").first().value
    response = admin_client.post(
        f"/admin/catalog/photo/{photo.pk}/change/",
        {
            "item": photo.item_id,
            "tags-TOTAL_FORMS": "1",
            "tags-INITIAL_FORMS": "0",
            "tags-0-attribute": "pattern",
            "tags-0-value": model_value,
        },
    )
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(photo.tags.filter(attribute="pattern").values_list("value", "source")) == [(model_value, "hand")]


def test_editing_a_tag_that_a_retagging_replaced_meanwhile_says_to_reload(admin_client, tagged_catalog):
    # given: the merchant opened the photo's page, then the photo was tagged again (its tag rows replaced)
    photo = Photo.objects.first()
    opened = photo.tags.filter(attribute="colour").first()
    Tag.objects.filter(pk=opened.pk).delete()
    # when the merchant saves a new value in the row as the page showed it
    response = admin_client.post(
        f"/admin/catalog/photo/{photo.pk}/change/",
        {
            "item": photo.item_id,
            "tags-TOTAL_FORMS": "1",
            "tags-INITIAL_FORMS": "1",
            "tags-0-id": str(opened.pk),
            "tags-0-photo": str(photo.pk),
            "tags-0-attribute": "colour",
            "tags-0-value": "red",
        },
    )
    # then nothing is saved, and the page says why
    assert response.status_code == 200
    assert "tags changed since the page was opened" in response.content.decode()
    assert not photo.tags.filter(attribute="colour", value="red", source=Tag.Source.HAND).exists()


@pytest.mark.parametrize("url", ["/", "/search/?q=hat", "/items/{pk}/"])
def test_pages_answer_head_requests_as_link_checkers_and_monitors_send_them(client, url):
    item = Item.objects.create(name="Hat")
    response = client.head(url.format(pk=item.pk))
    assert response.status_code == 200


def test_pages_still_refuse_methods_they_do_not_serve(client):
    assert client.put("/").status_code == 405
    assert client.post("/search/", {"q": "hat"}).status_code == 405


def test_an_item_that_is_not_there_gets_the_sites_own_not_found_page(client, settings, db):
    settings.DEBUG = False  # as in production; with DEBUG on Django shows its own debugging page
    response = client.get("/items/999999/")
    assert response.status_code == 404
    page = response.content.decode()
    assert "Not found" in page and 'href="/"' in page and "Search by words" in page
