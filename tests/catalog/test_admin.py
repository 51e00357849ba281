"""Tags in the merchant admin: a hand-set value replaces the model's candidates and must be a known label."""

from __future__ import annotations

import pytest
from django.core.files.base import ContentFile

from catalog.models import Item, Photo, Tag
from catalog.selectors import photos_tagged_query
from catalog.services.best_tags import tags_best_mark
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


@pytest.fixture
def photo() -> Photo:
    """A tagged photo on which the colour model hesitated between blue (0.5) and red (0.4)."""
    item = Item.objects.create(name="Shirt")
    photo = Photo(item=item, status=Photo.Status.TAGGED)
    photo.image.save("shirt.jpg", ContentFile(jpeg_bytes()), save=True)
    for value, score in (("blue", 0.5), ("red", 0.4)):
        Tag.objects.create(photo=photo, attribute="colour", value=value, score=score, source=Tag.Source.MODEL)
    tags_best_mark(photo_ids=[photo.pk])  # as tagging leaves them
    return photo


def _post_tags(
    admin_client, photo: Photo, *, edits: dict[int, str], new: list[tuple[str, str]] = (), deleted: tuple[int, ...] = ()
):
    """Post the photo's change form as the browser does: every tag row, edited, deleted or not, plus new rows."""
    tags = list(photo.tags.all())
    data = {
        "item": photo.item_id,
        "tags-TOTAL_FORMS": str(len(tags) + len(new)),
        "tags-INITIAL_FORMS": str(len(tags)),
    }
    for index, tag in enumerate(tags):
        data |= {
            f"tags-{index}-id": tag.pk,
            f"tags-{index}-photo": photo.pk,
            f"tags-{index}-attribute": tag.attribute,
            f"tags-{index}-value": edits.get(tag.pk, tag.value),
        } | ({f"tags-{index}-DELETE": "on"} if tag.pk in deleted else {})
    for index, (attribute, value) in enumerate(new, start=len(tags)):
        data |= {f"tags-{index}-photo": photo.pk, f"tags-{index}-attribute": attribute, f"tags-{index}-value": value}
    return admin_client.post(f"/admin/catalog/photo/{photo.pk}/change/", data)


def _colour_tags(photo: Photo) -> list[tuple[str, str]]:
    return list(photo.tags.filter(attribute="colour").values_list("value", "source"))


def test_editing_a_model_candidate_to_another_candidates_value_sets_it_by_hand(admin_client, photo):
    # when: the merchant changes the blue row to red, leaving the model's red row as it is
    blue = photo.tags.get(value="blue")
    response = _post_tags(admin_client, photo, edits={blue.pk: "red"})

    # then: red is hand-set and the model's candidates are gone
    assert response.status_code == 302, response.content.decode()[:3000]
    assert _colour_tags(photo) == [("red", "hand")]


def test_adding_a_hand_set_row_with_a_model_candidates_value_replaces_the_candidates(admin_client, photo):
    response = _post_tags(admin_client, photo, edits={}, new=[("colour", "red")])

    assert response.status_code == 302, response.content.decode()[:3000]
    assert _colour_tags(photo) == [("red", "hand")]


def test_deleting_the_shown_tag_marks_the_next_candidate_as_the_photos_colour(admin_client, photo):
    # when: the merchant deletes the blue row, the model's best guess
    response = _post_tags(admin_client, photo, edits={}, deleted=(photo.tags.get(value="blue").pk,))

    # then: red is left, and a refine by red finds the photo
    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(photo.tags.filter(is_best=True).values_list("value", flat=True)) == ["red"]


def test_a_hand_set_value_is_normalised_to_the_label(admin_client, photo):
    response = _post_tags(admin_client, photo, edits={}, new=[("colour", " Red ")])

    assert response.status_code == 302, response.content.decode()[:3000]
    assert _colour_tags(photo) == [("red", "hand")]


def test_a_value_that_is_not_a_label_of_the_attribute_is_refused_and_nothing_changes(admin_client, photo):
    response = _post_tags(admin_client, photo, edits={}, new=[("colour", "Reddish!!")])

    assert response.status_code == 200
    html = response.content.decode()
    assert "is not a colour label; choose one of: beige, black, blue" in html
    assert _colour_tags(photo) == [("blue", "model"), ("red", "model")]


def test_a_label_of_another_attribute_is_refused(admin_client, photo):
    response = _post_tags(admin_client, photo, edits={}, new=[("pattern", "red")])

    assert response.status_code == 200
    assert "is not a pattern label" in response.content.decode()
    assert not photo.tags.filter(attribute="pattern").exists()


def test_the_same_value_typed_twice_is_a_duplicate(admin_client, photo):
    response = _post_tags(admin_client, photo, edits={}, new=[("colour", "green"), ("colour", "green")])

    assert response.status_code == 200
    assert "already has colour &#x27;green&#x27; set by hand" in response.content.decode()
    assert _colour_tags(photo) == [("blue", "model"), ("red", "model")]


def test_a_second_hand_set_value_for_an_attribute_is_refused_and_nothing_changes(admin_client, photo):
    # given: colour set by hand to green
    assert _post_tags(admin_client, photo, edits={}, new=[("colour", "green")]).status_code == 302

    # when: the merchant adds a row setting it to red as well, which the green one would hide
    response = _post_tags(admin_client, photo, edits={}, new=[("colour", "red")])

    # then
    assert response.status_code == 200
    assert "already set by hand to &#x27;green&#x27;; change or delete that row instead" in response.content.decode()
    assert _colour_tags(photo) == [("green", "hand")]


def test_deleting_a_hand_set_tag_gives_its_attribute_back_to_the_model(admin_client, tagged_catalog, committed):
    # given: a tagged photo whose colour the merchant set by hand, which dropped the model's guesses
    photo = Photo.objects.order_by("pk").first()
    other = "orange" if photo.tags.get(attribute="colour", is_best=True).value != "orange" else "green"
    with committed():
        response = _post_tags(admin_client, photo, edits={}, new=[("colour", other)])
    assert response.status_code == 302 and [source for _, source in _colour_tags(photo)] == ["hand"]

    # when: the merchant deletes that row (the queued tagging runs once the save commits)
    with committed():
        response = _post_tags(admin_client, photo, edits={}, deleted=(photo.tags.get(attribute="colour").pk,))

    # then: the model tagged the photo again, so it has a colour and is found by one
    assert response.status_code == 302, response.content.decode()[:3000]
    photo.refresh_from_db()
    assert photo.status == Photo.Status.TAGGED
    assert {source for _, source in _colour_tags(photo)} == {"model"}
    assert photo.tags.filter(attribute="colour", is_best=True).count() == 1


def test_re_tagging_selected_photos_keeps_them_searchable_until_their_new_tags_are_stored(
    admin_client, tagged_catalog, django_capture_on_commit_callbacks
):
    # given: three tagged photos
    tagged_at = dict(Photo.objects.order_by("pk").values_list("pk", "tagged_at")[:3])

    # when: the merchant re-tags them, and the queued tasks have not run yet
    with django_capture_on_commit_callbacks() as queued:
        response = admin_client.post(
            "/admin/catalog/photo/", {"action": "retag_selected", "_selected_action": list(tagged_at)}
        )
    assert response.status_code == 302

    # then: meanwhile they are still tagged, so searches find them
    assert photos_tagged_query(filters={}).filter(pk__in=tagged_at).count() == 3
    # and once the tasks have run, each was tagged again
    for task in queued:
        task()
    for pk, at in Photo.objects.filter(pk__in=tagged_at).values_list("pk", "tagged_at"):
        assert at > tagged_at[pk]


def test_an_untouched_old_tag_outside_the_labels_does_not_block_saving(admin_client, photo):
    # given: a hand-set value from before values were checked
    Tag.objects.create(photo=photo, attribute="style", value="Grunge", source=Tag.Source.HAND)

    response = _post_tags(admin_client, photo, edits={}, new=[("pattern", "striped")])

    assert response.status_code == 302, response.content.decode()[:3000]
    assert list(photo.tags.filter(source="hand").values_list("attribute", "value")) == [
        ("pattern", "striped"),
        ("style", "Grunge"),
    ]


NO_TAGS = {"tags-TOTAL_FORMS": "0", "tags-INITIAL_FORMS": "0"}


def _image_file(name: str, image_format: str, size: tuple[int, int] = (32, 32), mode: str = "RGB", tail: bytes = b""):
    import io

    from django.core.files.uploadedfile import SimpleUploadedFile
    from PIL import Image

    buffer = io.BytesIO()
    Image.new(mode, size).save(buffer, image_format)
    return SimpleUploadedFile(name, buffer.getvalue() + tail)


@pytest.mark.parametrize(
    ("upload", "reason"),
    [
        (lambda: _image_file("a.bmp", "BMP"), "Not a supported image"),
        (lambda: _image_file("a.jpg", "JPEG", tail=b"%PDF-1.7" + b"\0" * 5000), "bytes after the image data"),
        (lambda: _image_file("a.png", "PNG", size=(9000, 9000), mode="1"), "the limit is 80 megapixels"),
    ],
    ids=["bmp", "jpeg with a pdf after it", "81 megapixels"],
)
def test_a_photo_the_tagger_would_refuse_is_refused_on_the_form_with_its_reason(admin_client, upload, reason):
    item = Item.objects.create(name="Shirt")
    response = admin_client.post("/admin/catalog/photo/add/", {"item": item.pk, "image": upload()} | NO_TAGS)
    assert response.status_code == 200  # the form again
    assert reason in response.content.decode()
    assert not Photo.objects.exists()


def test_a_photo_added_with_its_item_is_checked_as_well(admin_client):
    data = {
        "name": "Shirt",
        "currency": "EUR",
        "photos-TOTAL_FORMS": "1",
        "photos-INITIAL_FORMS": "0",
        "photos-0-image": _image_file("a.bmp", "BMP"),
    }
    response = admin_client.post("/admin/catalog/item/add/", data)
    assert response.status_code == 200
    assert "Not a supported image" in response.content.decode()
    assert not Item.objects.exists()


def test_a_readable_photo_is_saved_and_queued_for_tagging(admin_client):
    item = Item.objects.create(name="Shirt")
    response = admin_client.post(
        "/admin/catalog/photo/add/", {"item": item.pk, "image": _image_file("a.jpg", "JPEG")} | NO_TAGS
    )
    assert response.status_code == 302
    assert Photo.objects.get().item == item


@pytest.mark.parametrize(
    ("field", "value", "reason"),
    [
        ("price", "-1", "A price cannot be negative."),
        ("currency", "eu", "three-letter currency code"),
        ("currency", "€€€", "three-letter currency code"),
    ],
)
def test_the_admin_refuses_item_values_the_import_refuses(admin_client, field, value, reason):
    data = {"name": "Shirt", "currency": "EUR", "photos-TOTAL_FORMS": "0", "photos-INITIAL_FORMS": "0"}
    response = admin_client.post("/admin/catalog/item/add/", data | {field: value})
    assert response.status_code == 200
    assert reason in response.content.decode()
    assert not Item.objects.exists()
