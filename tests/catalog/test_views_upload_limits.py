"""Oversized uploads to pages: a readable 413 naming the limit in MB, never Django's bare 400 or a traceback.

The body is refused by fashion_search.upload_limits before CsrfViewMiddleware would read it.
"""

from __future__ import annotations

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db

MB = 1024 * 1024


def oversized(name: str = "photo.jpg", size_bytes: int = 3 * MB) -> SimpleUploadedFile:
    """A file well past a 1 MB limit plus the form overhead the body cap allows (1 MB)."""
    return SimpleUploadedFile(name, b"\xff\xd8" + b"0" * size_bytes, content_type="image/jpeg")


@pytest.fixture
def one_mb_limits(settings):
    settings.MAX_UPLOAD_BYTES = MB
    settings.STAFF_UPLOAD_MAX_BYTES = 2 * MB
    return settings


def assert_readable(html: str) -> None:
    assert "Traceback" not in html and "RequestDataTooBig" not in html
    assert "Bad Request (400)" not in html


def test_an_oversized_photo_gets_the_shopper_page_with_a_413_naming_the_limit(client, one_mb_limits):
    # given a 1 MB limit on shopper photos
    # when a shopper posts a 3 MB file with the plain form
    response = client.post("/", {"image": oversized()})
    # then the whole page comes back, form included, with the reason in its error style
    html = response.content.decode()
    assert response.status_code == 413
    assert '<p class="error" role="alert"' in html
    assert "photos can be up to 1 MB" in html
    assert 'id="search-form"' in html
    assert_readable(html)


def test_an_oversized_photo_sent_by_search_js_gets_the_results_panel_with_a_413(client, one_mb_limits):
    response = client.post("/", {"image": oversized()}, headers={"X-Requested-With": "fetch"})
    html = response.content.decode()
    assert response.status_code == 413
    assert html.lstrip().startswith('<p class="error" role="alert"')  # the panel alone, not a whole page
    assert "photos can be up to 1 MB" in html
    assert_readable(html)


def test_with_debug_on_an_oversized_photo_still_gets_the_page_not_a_traceback(client, one_mb_limits):
    one_mb_limits.DEBUG = True
    response = client.post("/", {"image": oversized()}, headers={"X-Requested-With": "fetch"})
    assert response.status_code == 413
    assert_readable(response.content.decode())


def test_the_limit_is_named_in_megabytes_at_its_default(client, settings):
    settings.MAX_UPLOAD_BYTES = 10 * MB
    response = client.post("/", {"image": oversized(size_bytes=12 * MB)})
    assert response.status_code == 413
    assert "photos can be up to 10 MB" in response.content.decode()


def test_a_photo_under_the_limit_still_passes_the_csrf_check(one_mb_limits):
    # given a client that, like a browser on another site, sends no CSRF token
    client = Client(enforce_csrf_checks=True)
    # when it posts a small photo, then CSRF still refuses it: parsing the body early skips no check
    response = client.post("/", {"image": SimpleUploadedFile("p.jpg", jpeg_bytes())})
    assert response.status_code == 403


def test_an_admin_upload_over_the_staff_limit_gets_a_readable_413(admin_client, one_mb_limits):
    # given a 2 MB cap on merchants' request bodies
    # when a merchant uploads a 3 MB training zip
    response = admin_client.post(
        "/admin/recognition/recognizerversion/add/",
        {"name": "scenes", "source": "zip", "upload": oversized("train.zip")},
    )
    # then the answer is a 413 page naming the merchant's limit, not Django's bare 400
    html = response.content.decode()
    assert response.status_code == 413
    assert "the limit is 2 MB per request" in html
    assert_readable(html)


def test_the_api_still_answers_an_oversized_photo_with_json_naming_the_limit_as_the_page_does(client, one_mb_limits):
    response = client.post("/api/v1/search", {"image": oversized()})
    assert response.status_code == 413
    assert response.json()["error"] == "image_too_large"
    assert response.json()["reason"] == "The photo is too large: photos can be up to 1 MB."


MALFORMED_BODIES = {
    "no boundary": ("multipart/form-data", b'--x\r\nContent-Disposition: form-data; name="image"\r\n\r\nabc\r\n--x--'),
    "empty boundary": ("multipart/form-data; boundary=", b"abc"),
    "too many fields": ("application/x-www-form-urlencoded", "&".join(f"f{n}=1" for n in range(1500)).encode()),
}


@pytest.mark.parametrize("case", sorted(MALFORMED_BODIES))
@pytest.mark.parametrize("from_script", [False, True], ids=["plain form", "search.js"])
def test_a_body_that_is_not_a_readable_form_gets_the_shopper_page_with_a_400_saying_so(client, case, from_script):
    content_type, body = MALFORMED_BODIES[case]
    headers = {"X-Requested-With": "fetch"} if from_script else {}
    response = client.post("/", data=body, content_type=content_type, headers=headers)
    html = response.content.decode()
    assert response.status_code == 400
    assert "the form arrived malformed" in html
    assert_readable(html)
    assert ('id="search-form"' in html) is not from_script  # the whole page, or only the results panel


def test_a_photo_just_over_the_limit_but_within_the_form_allowance_is_named_in_megabytes_too(client, settings):
    # given a photo of 10.5 MB: within the body cap (the photo's limit plus the form's 1 MB), so the
    # refusal comes from the decoder, not the upload handler
    settings.MAX_UPLOAD_BYTES = 10 * MB
    photo = SimpleUploadedFile("big.jpg", jpeg_bytes() + b"\x00" * (10 * MB + MB // 2), content_type="image/jpeg")

    # when it is sent to the API, then it reads as the handler's refusal of a larger one does
    response = client.post("/api/v1/search", {"image": photo})
    assert response.status_code == 413
    assert response.json()["reason"] == "The photo is too large: photos can be up to 10 MB."
