"""Abuse: per-client rate limits with 429 and Retry-After; admin behind login, staff rights and CSRF."""

from __future__ import annotations

import uuid

import numpy as np
import pytest
from django.contrib.auth import get_user_model
from django.core.files.uploadedfile import SimpleUploadedFile
from django.test import Client

from catalog.api import api
from catalog.models import Item
from catalog.query_tokens import query_token_make
from recognition.services import EMBEDDING_DIM

pytestmark = pytest.mark.django_db

# The API operations that take a photo and change nothing: open to anonymous clients, rate limited.
READ_ONLY_OPERATIONS = {("post", "/api/v1/recognize"), ("post", "/api/v1/search"), ("post", "/api/v1/look")}


@pytest.fixture
def rate_limits(settings):
    """Rate limits on, counted in a cache of their own so that no other test's requests count."""
    settings.RATELIMIT_ENABLE = True
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.locmem.LocMemCache", "LOCATION": uuid.uuid4().hex}
    }
    return settings


def empty_photo() -> dict[str, SimpleUploadedFile]:
    """An upload that is refused at once (400), so that counting needs no inference."""
    return {"image": SimpleUploadedFile("photo.jpg", b"", content_type="image/jpeg")}


# Limits in these tests are per hour: django-ratelimit counts in fixed windows, and a per-minute
# window could end between two requests of a slow test run, letting the next one through.


def assert_retry_after(response) -> None:
    assert response.status_code == 429
    assert 1 <= int(response["Retry-After"]) <= 3600


# --- Rate limits ----------------------------------------------------------------------------------


def test_api_uploads_over_the_limit_get_429_json_with_retry_after(client, rate_limits):
    # given two uploads an hour per client
    rate_limits.RATE_LIMIT_UPLOADS = "2/h"
    # when a client sends three
    statuses = [client.post("/api/v1/search", empty_photo()).status_code for _ in range(2)]
    third = client.post("/api/v1/search", empty_photo())
    # then the first two are answered and the third is refused with a JSON reason
    assert statuses == [400, 400]
    assert_retry_after(third)
    assert third.json()["error"] == "rate_limited"
    assert third.json()["reason"]


def test_the_shopper_page_over_the_limit_shows_a_readable_429_page(client, rate_limits):
    rate_limits.RATE_LIMIT_UPLOADS = "1/h"
    client.post("/", empty_photo())
    response = client.post("/", empty_photo())
    assert_retry_after(response)
    assert "try again in" in response.content.decode()


def test_the_page_and_the_api_share_one_upload_allowance(client, rate_limits):
    rate_limits.RATE_LIMIT_UPLOADS = "2/h"
    client.post("/", empty_photo())
    client.post("/api/v1/recognize", empty_photo())
    assert_retry_after(client.post("/", empty_photo()))


def test_every_api_call_counts_against_the_api_limit(client, rate_limits):
    rate_limits.RATE_LIMIT_API = "1/h"
    client.post("/api/v1/recognize", empty_photo())
    assert_retry_after(client.post("/api/v1/recognize", empty_photo()))


def test_each_client_address_has_its_own_allowance(client, rate_limits):
    rate_limits.RATE_LIMIT_UPLOADS = "1/h"
    client.post("/api/v1/search", empty_photo(), REMOTE_ADDR="203.0.113.1")
    assert client.post("/api/v1/search", empty_photo(), REMOTE_ADDR="203.0.113.2").status_code == 400
    assert_retry_after(client.post("/api/v1/search", empty_photo(), REMOTE_ADDR="203.0.113.1"))


def test_behind_a_trusted_proxy_clients_are_told_apart_by_the_address_it_saw(client, rate_limits):
    # given one trusted proxy, which appends the client's address to X-Forwarded-For
    rate_limits.RATE_LIMIT_UPLOADS = "1/h"
    rate_limits.RATE_LIMIT_PROXY_COUNT = 1
    proxy = {"REMOTE_ADDR": "10.0.0.1"}
    client.post("/api/v1/search", empty_photo(), HTTP_X_FORWARDED_FOR="198.51.100.7", **proxy)
    # when another client sends a photo through the same proxy, it has its own allowance
    other = client.post("/api/v1/search", empty_photo(), HTTP_X_FORWARDED_FOR="198.51.100.8", **proxy)
    assert other.status_code == 400
    # then the first client cannot escape its limit by typing a forged address in front
    forged = client.post(
        "/api/v1/search", empty_photo(), HTTP_X_FORWARDED_FOR="1.2.3.4, 198.51.100.7", **proxy
    )
    assert_retry_after(forged)


@pytest.mark.parametrize("address", ["/search/?q=red+dress", "/look/?type=dress&colour=red", "ITEM"])
def test_pages_that_search_without_a_photo_are_limited_per_client(client, rate_limits, address):
    # given two such pages an hour per client
    rate_limits.RATE_LIMIT_PAGES = "2/h"
    if address == "ITEM":
        address = f"/items/{Item.objects.create(name='Linen shirt').pk}/"
    # when a client opens a third
    statuses = [client.get(address).status_code for _ in range(2)]
    third = client.get(address)
    # then it is told to wait, in a readable page, while another client is still served
    assert statuses == [200, 200]
    assert_retry_after(third)
    assert "try again in" in third.content.decode()
    assert client.get(address, REMOTE_ADDR="203.0.113.9").status_code == 200


def test_browsing_pages_does_not_use_up_the_upload_allowance(client, rate_limits):
    rate_limits.RATE_LIMIT_PAGES = "1/h"
    rate_limits.RATE_LIMIT_UPLOADS = "1/h"
    client.get("/search/?q=shirt")
    assert_retry_after(client.get("/search/?q=shirt"))
    assert client.post("/", empty_photo()).status_code == 400


def test_an_unreachable_cache_is_logged_and_serves_every_request_uncounted(client, settings, caplog):
    # given: rate limits counted in a Redis that does not answer
    settings.RATELIMIT_ENABLE = True
    settings.RATE_LIMIT_PAGES = settings.RATE_LIMIT_UPLOADS = settings.RATE_LIMIT_API = "1/h"
    settings.CACHES = {
        "default": {"BACKEND": "django.core.cache.backends.redis.RedisCache", "LOCATION": "redis://127.0.0.1:9/0"}
    }
    # when: a client sends pages and photos past every limit
    pages = {client.get("/search/?q=red+dress").status_code for _ in range(2)}
    uploads = {client.post(path, empty_photo()).status_code for path in ("/", "/api/v1/search") for _ in range(2)}
    # then: each is answered as without limits, and the outage is in the log
    assert pages == {200}
    assert uploads == {400}
    assert "the cache is unreachable" in caplog.text


def test_a_refine_counts_as_a_page_and_when_refused_keeps_its_form_to_try_again(client, rate_limits):
    # given one page and one photo an hour, and the token of a search already made
    rate_limits.RATE_LIMIT_PAGES = rate_limits.RATE_LIMIT_UPLOADS = "1/h"
    token = query_token_make(np.ones(EMBEDDING_DIM, np.float32) / np.sqrt(EMBEDDING_DIM), {})
    assert client.post("/", {"query": token, "colour": "red"}).status_code == 200
    # when the shopper refines again
    refused = client.post("/", {"query": token, "colour": "red"})
    # then it is refused for now, with the refine form and the choice still there to try again
    assert_retry_after(refused)
    html = refused.content.decode()
    assert "You have refined many searches in a short time" in html
    assert f'value="{token}"' in html and '<option value="red" selected>' in html
    # and no photo of the shopper's allowance was used
    assert client.post("/", empty_photo()).status_code == 400


def test_every_answer_of_the_results_panel_is_marked_as_the_panel(client, rate_limits):
    # search.js puts an answer into the page only when it carries this mark (not a proxy's or
    # Django's own error page), so the panel's errors must carry it too
    rate_limits.RATE_LIMIT_UPLOADS = "1/h"
    refused = client.post("/", empty_photo(), headers={"X-Requested-With": "fetch"})
    limited = client.post("/", empty_photo(), headers={"X-Requested-With": "fetch"})
    assert (refused.status_code, limited.status_code) == (400, 429)
    assert refused["X-Results-Partial"] == limited["X-Results-Partial"] == "1"


def test_staff_are_not_rate_limited(admin_client, rate_limits):
    rate_limits.RATE_LIMIT_UPLOADS = "1/h"
    statuses = {admin_client.post("/api/v1/search", empty_photo()).status_code for _ in range(3)}
    assert statuses == {400}


# --- Admin: login, staff rights, CSRF ---------------------------------------------------------------


@pytest.fixture
def shopper_account(db):
    return get_user_model().objects.create_user("shopper", password="not-staff-123")


def test_admin_requires_login(client):
    response = client.get("/admin/catalog/item/")
    assert response.status_code == 302
    assert response["Location"].startswith("/admin/login/")


def test_a_signed_in_user_without_staff_rights_gets_no_admin_and_changes_nothing(client, shopper_account):
    # given a signed-in user who is not staff
    client.force_login(shopper_account)
    # when they open the admin and post a new item and an index rebuild
    listing = client.get("/admin/catalog/item/")
    added = client.post("/admin/catalog/item/add/", {"name": "Forged", "currency": "EUR"})
    rebuilt = client.post("/admin/catalog/photo/rebuild-index/")
    # then each is sent to the login page and no item exists
    assert all(r.status_code == 302 and r["Location"].startswith("/admin/login/") for r in (listing, added, rebuilt))
    assert not Item.objects.exists()


def test_changing_data_in_admin_requires_a_csrf_token(admin_user):
    # given a staff member whose browser sends no CSRF token (a cross-site form)
    browser = Client(enforce_csrf_checks=True)
    browser.force_login(admin_user)
    # when it posts a new item
    response = browser.post(
        "/admin/catalog/item/add/",
        {"name": "Cross-site", "currency": "EUR", "photos-TOTAL_FORMS": "0", "photos-INITIAL_FORMS": "0"},
    )
    # then it is refused and nothing changed
    assert response.status_code == 403
    assert not Item.objects.exists()


def test_the_shopper_form_requires_a_csrf_token():
    response = Client(enforce_csrf_checks=True).post("/", empty_photo())
    assert response.status_code == 403


def test_every_api_operation_that_is_not_read_only_requires_authentication():
    # The shopper-facing API changes nothing; an operation that writes must declare auth (staff).
    schema = api.get_openapi_schema()
    for path, operations in schema["paths"].items():
        for method, operation in operations.items():
            if method == "get" or (method, path) in READ_ONLY_OPERATIONS:
                continue
            assert operation.get("security"), f"{method.upper()} {path} changes data without authentication"


def test_a_shop_link_that_is_not_a_web_page_is_refused_in_the_admin(admin_client):
    form = {"name": "Coat", "currency": "EUR", "photos-TOTAL_FORMS": "0", "photos-INITIAL_FORMS": "0"}
    response = admin_client.post("/admin/catalog/item/add/", form | {"shop_url": "ftp://shop.example/coat"})
    assert response.status_code == 200  # the form again
    assert "Enter an http:// or https:// address." in response.content.decode()
    assert not Item.objects.exists()
