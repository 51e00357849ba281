"""Server-side conditions (an unreadable index, a model that is not ready) answer 503 with a plain reason.

Shoppers and API clients get a message without tracebacks or server paths; the detail goes to the log.
"""

from __future__ import annotations

import logging

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Item, Photo
from catalog.query_tokens import query_token_make
from recognition.services import EMBEDDING_DIM
from tests.conftest import jpeg_bytes

pytestmark = pytest.mark.django_db


def unit_vector() -> np.ndarray:
    vector = np.random.default_rng(0).standard_normal(EMBEDDING_DIM).astype(np.float32)
    return vector / np.linalg.norm(vector)


@pytest.fixture
def unreadable_index(settings):
    """CURRENT names an index file that is not there, as after a lost or half-copied INDEX_DIR."""
    settings.INDEX_DIR.mkdir(parents=True, exist_ok=True)
    (settings.INDEX_DIR / "CURRENT").write_text("gone")
    return settings.INDEX_DIR


@pytest.fixture
def model_not_ready(settings):
    """A backbone that cannot load: a runtime that does not exist (the real error, nothing mocked)."""
    settings.RECOGNITION_RUNTIME = "no-such-runtime"


@pytest.fixture
def item_with_photo(db) -> Item:
    item = Item.objects.create(name="Shirt")
    Photo.objects.create(
        item=item, image="photos/x.jpg", status=Photo.Status.TAGGED, embedding=unit_vector().tobytes(),
        embedding_model="test",
    )
    return item


def assert_plain(text: str, index_dir) -> None:
    """No traceback, and neither the index directory nor the file name that CURRENT points to."""
    assert "Traceback" not in text
    assert str(index_dir) not in text and "index-gone" not in text


def photo() -> dict[str, SimpleUploadedFile]:
    return {"image": SimpleUploadedFile("p.jpg", jpeg_bytes((96, 96)))}


# --- The shopper page ---------------------------------------------------------------------------


def test_a_search_with_an_unreadable_index_shows_the_page_with_a_503(client, unreadable_index, caplog):
    # given an index whose published file is missing
    # when a shopper uploads a photo
    with caplog.at_level(logging.ERROR, logger="catalog"):
        response = client.post("/", photo())
    # then the page renders its error state with a plain reason, and the log names the file
    html = response.content.decode()
    assert response.status_code == 503
    assert '<p class="error" role="alert"' in html and 'id="search-form"' in html
    assert "Photo search is unavailable right now" in html
    assert_plain(html, unreadable_index)
    assert str(unreadable_index) in caplog.text


def test_refining_with_an_unreadable_index_shows_the_results_panel_with_a_503(client, unreadable_index):
    token = query_token_make(unit_vector(), {})
    response = client.post("/", {"query": token, "colour": ""}, headers={"X-Requested-With": "fetch"})
    html = response.content.decode()
    assert response.status_code == 503
    assert "Photo search is unavailable right now" in html
    assert response["X-Results-Partial"] == "1"  # search.js shows this panel instead of a connection error
    assert f'value="{token}"' in html  # the refine form stays, to try again
    assert_plain(html, unreadable_index)


def test_a_model_that_is_not_ready_is_a_503_not_a_400(client, model_not_ready):
    response = client.post("/", photo())
    html = response.content.decode()
    assert response.status_code == 503
    assert "Photo search is not ready yet" in html
    assert "no-such-runtime" not in html  # the configuration detail stays in the log
    assert "Traceback" not in html


def test_an_item_page_with_an_unreadable_index_still_shows_the_item(client, unreadable_index, item_with_photo):
    response = client.get(f"/items/{item_with_photo.pk}/")
    html = response.content.decode()
    assert response.status_code == 200
    assert "Shirt" in html
    assert "Similar items cannot be shown right now" in html
    assert_plain(html, unreadable_index)


# --- The API --------------------------------------------------------------------------------------


def test_the_api_answers_an_unreadable_index_with_503_and_no_path(client, unreadable_index, item_with_photo):
    response = client.get(f"/api/v1/items/{item_with_photo.pk}/similar")
    assert response.status_code == 503
    body = response.json()
    assert body["error"] == "index_unreadable"
    assert body["reason"] == "Photo search is unavailable right now; please try again later."
    assert_plain(response.content.decode(), unreadable_index)
    # and the published schema says it may answer so
    schema = client.get("/api/v1/openapi.json").json()
    similar = schema["paths"]["/api/v1/items/{item_id}/similar"]["get"]["responses"]
    assert "index_unreadable" in similar["503"]["description"]
    assert "index_unreadable" in schema["components"]["schemas"]["ErrorOut"]["properties"]["error"]["description"]


def test_an_api_search_with_an_unreadable_index_is_a_503(client, unreadable_index):
    response = client.post("/api/v1/search", photo())
    assert response.status_code == 503
    assert response.json()["error"] == "index_unreadable"
    assert_plain(response.content.decode(), unreadable_index)


def test_the_api_answers_a_model_that_is_not_ready_with_503_and_a_plain_reason(client, model_not_ready):
    response = client.post("/api/v1/recognize", photo())
    assert response.status_code == 503
    assert response.json()["error"] == "model_not_ready"
    assert "no-such-runtime" not in response.json()["reason"]
    assert response.json()["reason"]


def test_an_api_503_says_when_to_try_again(client, model_not_ready):
    response = client.post("/api/v1/search", photo())
    assert response.status_code == 503
    assert int(response["Retry-After"]) > 0
