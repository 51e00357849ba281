"""The JSON API: recognize and search, and their errors."""

from __future__ import annotations

from urllib.parse import quote

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from tests.conftest import demo_photos, jpeg_bytes

pytestmark = pytest.mark.django_db


def upload(path=None, data: bytes | None = None, name: str = "photo.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data if data is not None else path.read_bytes(), content_type="image/jpeg")


def test_recognize_returns_a_job_id_and_type_candidates_by_descending_score(client):
    shoe = demo_photos(per_type=1)[6]  # the "shoes" folder
    response = client.post("/api/v1/recognize?model=type", {"image": upload(shoe)})
    assert response.status_code == 200
    body = response.json()
    assert body["jobId"]
    scores = [c["score"] for c in body["candidates"]]
    assert scores == sorted(scores, reverse=True)
    assert body["candidates"][0]["tag"] == "shoes"


def test_recognize_with_an_unknown_model_lists_the_valid_ones(client):
    response = client.post("/api/v1/recognize?model=weather", {"image": upload(data=jpeg_bytes())})
    assert response.status_code == 400
    assert response.json()["error"] == "unknown_recognizer"
    assert "type" in response.json()["reason"]


def test_an_unknown_model_of_ten_thousand_characters_is_echoed_shortened(client):
    response = client.post("/api/v1/recognize?model=" + "x" * 10_000, {"image": upload(data=jpeg_bytes())})
    assert response.status_code == 400
    reason = response.json()["reason"]
    assert "'" + "x" * 40 + "...'" in reason and len(reason) < 200


@pytest.mark.parametrize(
    ("data", "status", "code"),
    [
        (b"", 400, "invalid_image"),
        (b"<svg xmlns='http://www.w3.org/2000/svg'></svg>", 400, "invalid_image"),
        (jpeg_bytes()[:40], 400, "invalid_image"),
    ],
)
def test_bad_uploads_get_a_json_reason(client, data, status, code):
    response = client.post("/api/v1/search", {"image": upload(data=data)})
    assert response.status_code == status
    assert response.json()["error"] == code
    assert response.json()["reason"]


def test_a_file_over_the_size_cap_gets_413(client, settings):
    settings.MAX_UPLOAD_BYTES = 500
    response = client.post("/api/v1/recognize", {"image": upload(data=jpeg_bytes((300, 300)))})
    assert response.status_code == 413
    assert response.json()["error"] == "image_too_large"


def test_a_request_without_an_image_is_a_400_with_a_reason(client):
    response = client.post("/api/v1/search", {})
    assert response.status_code == 400
    assert "image" in response.json()["reason"]


def test_search_ranks_catalog_items_of_the_same_type_first_with_shop_urls(client, tagged_catalog):
    from catalog.models import Item

    Item.objects.update(shop_url="https://shop.example/item")
    query = demo_photos(per_type=3)[3 * 6 + 2]  # a shoes photo that is not in the catalog
    response = client.post("/api/v1/search?limit=5", {"image": upload(query)})
    assert response.status_code == 200
    body = response.json()
    assert body["predictions"]["type"][0]["tag"] == "shoes"
    results = body["results"]
    assert len(results) == 5
    assert results[0]["tags"]["type"] == "shoes"
    assert all(r["shop_url"] == "https://shop.example/item" for r in results)
    assert [r["score"] for r in results] == sorted((r["score"] for r in results), reverse=True)
    assert "visual" in results[0]["why"]


def test_search_limit_out_of_range_is_a_400(client):
    response = client.post("/api/v1/search?limit=0", {"image": upload(data=jpeg_bytes())})
    assert response.status_code == 400
    assert "limit" in response.json()["reason"]


@pytest.mark.parametrize(
    "number", ["4\x85", " 4", "4_0", "+4", "٤"], ids=["unicode space", "space", "underscore", "plus", "arabic digit"]
)
@pytest.mark.parametrize(
    ("url", "name"),
    [
        ("/api/v1/items/{}", "item_id"),
        ("/api/v1/items/1/similar?limit={}", "limit"),
        ("/api/v1/search/text?q=hat&offset={}", "offset"),
    ],
)
def test_a_number_in_a_url_that_is_not_plain_digits_is_a_400_not_read_as_another_number(client, url, name, number):
    # Pydantic alone reads each of these as 4 or 40; an API fuzzer sent "4\x85" and got item 4's look.
    response = client.get(url.format(quote(number)))
    assert response.status_code == 400
    reason = response.json()["reason"]
    assert f".{name}: " in reason and "a whole number written with the digits 0-9 only" in reason
