"""Malformed multipart bodies on the upload endpoints get the API's JSON error, never Django's HTML page."""

from __future__ import annotations

import pytest

from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db

UPLOAD_ENDPOINTS = ["/api/v1/recognize", "/api/v1/search", "/api/v1/look"]


def _part(name: str, value: bytes, filename: str | None = None, boundary: bytes = b"x") -> bytes:
    disposition = f'form-data; name="{name}"' + (f'; filename="{filename}"' if filename else "")
    return b"--" + boundary + f"\r\nContent-Disposition: {disposition}\r\n\r\n".encode() + value + b"\r\n"


MALFORMED = {
    "no boundary": ("multipart/form-data", _part("image", b"abc", "a.jpg") + b"--x--\r\n"),
    "empty boundary": ("multipart/form-data; boundary=", b"abc"),
    "boundary too long": ("multipart/form-data; boundary=" + "b" * 250, b"abc"),  # Django parses 201 at most
}


def _assert_json_error(response, status: int, code: str) -> None:
    assert response.status_code == status, response.content[:200]
    assert response["Content-Type"].startswith("application/json")
    body = response.json()
    assert body["error"] == code
    assert body["reason"]


@pytest.mark.parametrize("path", UPLOAD_ENDPOINTS)
@pytest.mark.parametrize("case", sorted(MALFORMED))
def test_a_missing_or_invalid_boundary_is_a_json_400(client, path, case):
    # given: a multipart request whose boundary cannot be used
    content_type, body = MALFORMED[case]

    # when
    response = client.generic("POST", path, body, content_type=content_type)

    # then
    _assert_json_error(response, 400, "invalid_request")


@pytest.mark.parametrize("path", UPLOAD_ENDPOINTS)
@pytest.mark.parametrize(
    "body",
    [b"garbage", _part("image", jpeg_bytes(), "a.jpg")[:-40], b"--x\r\nno headers here\r\n--x--\r\n"],
    ids=["garbage", "cut short", "part without headers"],
)
def test_a_garbage_or_truncated_body_is_a_json_400(client, path, body):
    # when: the boundary is valid but the body does not follow it
    response = client.generic("POST", path, body, content_type="multipart/form-data; boundary=x")

    # then
    _assert_json_error(response, 400, "invalid_request")


@pytest.mark.parametrize("path", UPLOAD_ENDPOINTS)
def test_too_many_form_fields_or_files_is_a_json_400(client, settings, path):
    # given: caps of two fields and one file (Django's defaults are 1,000 and 100)
    settings.DATA_UPLOAD_MAX_NUMBER_FIELDS = 2
    settings.DATA_UPLOAD_MAX_NUMBER_FILES = 1
    fields = b"".join(_part(f"f{n}", b"v") for n in range(3)) + b"--x--\r\n"
    files = b"".join(_part("image", jpeg_bytes(), f"{n}.jpg") for n in range(2)) + b"--x--\r\n"

    # when
    responses = [
        client.generic("POST", path, body, content_type="multipart/form-data; boundary=x") for body in (fields, files)
    ]

    # then
    for response in responses:
        _assert_json_error(response, 400, "invalid_request")


@pytest.mark.parametrize("path", UPLOAD_ENDPOINTS)
def test_a_body_over_the_upload_cap_is_a_json_413(client, settings, path):
    # given: a cap below the request body
    settings.MAX_UPLOAD_BYTES = 100
    body = _part("image", b"\xff" * (2 * 1024 * 1024), "a.jpg") + b"--x--\r\n"

    # when
    response = client.generic("POST", path, body, content_type="multipart/form-data; boundary=x")

    # then
    _assert_json_error(response, 413, "image_too_large")


@pytest.mark.parametrize(("method", "path", "allowed"), [
    ("get", "/api/v1/search", "POST"),
    ("delete", "/api/v1/items/1", "GET"),
    ("put", "/api/v1/search/text", "GET"),
])
def test_a_method_an_operation_does_not_serve_is_a_json_405_naming_the_one_it_does(client, method, path, allowed):
    response = getattr(client, method)(path)
    _assert_json_error(response, 405, "method_not_allowed")
    assert response["Allow"] == allowed
    assert f"use {allowed}" in response.json()["reason"]


def test_a_path_no_operation_serves_is_a_json_404_pointing_at_the_docs(client):
    response = client.get("/api/v1/nothing-here")
    _assert_json_error(response, 404, "not_found")
    assert "/api/v1/docs" in response.json()["reason"]


def test_a_trailing_slash_is_a_json_404_saying_to_drop_it(client):
    response = client.get("/api/v1/search/text/?q=hat")
    _assert_json_error(response, 404, "not_found")
    assert "drop the trailing slash: /api/v1/search/text." in response.json()["reason"]


def test_an_uncaught_error_in_an_operation_is_a_json_500_and_logged(client, monkeypatch, caplog):
    # given: a text search that fails inside the service (the fault is injected; nothing else is replaced)
    def failing_search(**kwargs):
        raise RuntimeError("the database went away")

    monkeypatch.setattr("catalog.api_browse.search_by_text", failing_search)
    client.raise_request_exception = False

    # when
    response = client.get("/api/v1/search/text?q=hat")

    # then: the client reads the API's error, and the traceback is in the log only
    _assert_json_error(response, 500, "server_error")
    assert "database went away" not in response.content.decode()
    assert any("database went away" in str(record.exc_info) for record in caplog.records if record.exc_info)


def test_head_on_a_get_operation_answers_as_get_without_the_body(client):
    got = client.get("/api/v1/search/text?q=hat")
    head = client.head("/api/v1/search/text?q=hat")
    assert head.status_code == 200
    assert head.content == b""
    assert head["Content-Length"] == str(len(got.content))
    assert head["Content-Type"] == got["Content-Type"]


def test_head_on_an_upload_operation_is_a_405_with_the_method_it_takes(client):
    response = client.head("/api/v1/search")
    assert response.status_code == 405
    assert response["Allow"] == "POST"
    assert response.content == b""


def test_the_schema_documents_for_every_operation_its_405_and_when_to_retry(client):
    schema = client.get("/api/v1/openapi.json").json()

    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            responses = operation["responses"]
            assert "method_not_allowed" in responses["405"]["description"], f"{method} {path}"
            assert "Retry-After" in responses["429"]["headers"], f"{method} {path}"
            assert all(answer["description"] not in ("Bad Request", "Not Found") for answer in responses.values())
    look_item = schema["components"]["schemas"]["LookItemOut"]["properties"]
    assert "brand" in look_item


def test_the_schema_says_when_a_photo_sent_for_a_look_is_refused(client):
    look = client.get("/api/v1/openapi.json").json()["paths"]["/api/v1/look"]["post"]["responses"]
    assert "invalid_image" in look["400"]["description"]
    assert "image_too_large" in look["413"]["description"]
