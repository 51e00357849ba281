"""A parameter the API does not take, or one given twice, is a 400 naming it, never silently ignored."""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def photo() -> SimpleUploadedFile:
    return SimpleUploadedFile("photo.jpg", jpeg_bytes(), content_type="image/jpeg")


def assert_invalid_request(response, *phrases: str) -> None:
    assert response.status_code == 400, response.content[:300]
    body = response.json()
    assert body["error"] == "invalid_request"
    for phrase in phrases:
        assert phrase in body["reason"]


def test_a_misspelt_filter_is_refused_with_the_names_the_search_takes(client):
    response = client.post("/api/v1/search?color=red", {"image": photo()})
    assert_invalid_request(response, "Unknown query parameter `color`", "`colour`, `limit`, `pattern`, `style`, `type`")


def test_a_filter_sent_as_a_form_field_is_refused_and_told_where_it_goes(client):
    response = client.post("/api/v1/search", {"image": photo(), "colour": "red"})
    assert_invalid_request(response, "Unexpected form field `colour`: send it in the query string")


def test_a_form_field_no_operation_takes_is_refused(client):
    response = client.post("/api/v1/recognize", {"image": photo(), "note": "hi"})
    assert_invalid_request(response, "Unexpected form field `note`: the form takes only `image`")


def test_a_filter_given_twice_is_refused_rather_than_settled_by_the_last(client):
    response = client.get("/api/v1/search/text?q=shirt&limit=3&limit=30")
    assert_invalid_request(response, "`limit` is given more than once")


def test_an_operation_without_query_parameters_refuses_any(client):
    response = client.get("/api/v1/items/1?verbose=1")
    assert_invalid_request(response, "Unknown query parameter `verbose`; this operation takes none")


def test_a_long_unknown_name_is_echoed_shortened(client):
    response = client.get("/api/v1/search/text?q=shirt&" + "x" * 5000 + "=1")
    assert_invalid_request(response, "`" + "x" * 40 + "...`")
    assert len(response.json()["reason"]) < 200


def test_the_parameters_an_operation_takes_are_answered(client):
    response = client.get("/api/v1/search/text?q=shirt&limit=3&offset=0")
    assert response.status_code == 200
    assert response.json()["understood"] == {"type": "shirt"}


def test_two_photos_in_image_are_refused_rather_than_the_last_searched(client):
    response = client.post("/api/v1/search", {"image": [photo(), photo()]})
    assert_invalid_request(response, "2 files sent in `image`: send one photo a request")


def test_a_file_under_another_name_is_refused_rather_than_dropped(client):
    response = client.post("/api/v1/recognize", {"image": photo(), "second": photo()})
    assert_invalid_request(response, "Unexpected file `second`: the form takes one photo, in `image`")


@pytest.mark.parametrize(
    ("body", "content_type"),
    [(jpeg_bytes(), "image/jpeg"), (b'{"image": "x"}', "application/json")],
    ids=["raw JPEG body", "JSON"],
)
def test_a_photo_not_sent_as_a_multipart_file_is_told_how_to_send_it(client, body, content_type):
    response = client.generic("POST", "/api/v1/search", body, content_type=content_type)
    assert_invalid_request(
        response,
        "send it as multipart/form-data, in a file part named `image`",
        f"this request's body is {content_type}",
    )


def test_a_text_search_of_spaces_alone_is_refused_as_an_empty_one_is(client):
    assert_invalid_request(client.get("/api/v1/search/text?q=%20%20"), "give at least one word")
