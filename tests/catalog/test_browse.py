"""Refinement, item pages, complete-the-look and text search, through pages and the API."""

from __future__ import annotations

import re

import numpy as np
import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Item, Look
from catalog.query_tokens import query_token_make
from recognition.backbone import EMBEDDING_DIM
from recognition.recognizers import Prediction
from tests.conftest import demo_photos

pytestmark = pytest.mark.django_db


def upload(path) -> SimpleUploadedFile:
    return SimpleUploadedFile("q.jpg", path.read_bytes(), content_type="image/jpeg")


def test_the_api_search_can_be_narrowed_to_a_type(client, tagged_catalog):
    shoe = demo_photos(per_type=3)[6 * 3 + 2]
    body = client.post("/api/v1/search?type=hat&limit=5", {"image": upload(shoe)}).json()
    assert body["results"]
    assert {r["tags"]["type"] for r in body["results"]} == {"hat"}


def test_an_unknown_filter_value_is_a_400_naming_the_parameter(client):
    response = client.post("/api/v1/search?colour=tartan", {"image": upload(demo_photos(1)[0])})
    assert response.status_code == 400
    assert "colour" in response.json()["reason"]


def test_the_result_page_refines_the_same_search_without_the_photo(client, tagged_catalog):
    shoe = demo_photos(per_type=3)[6 * 3 + 2]
    page = client.post("/", {"image": upload(shoe)}).content.decode()
    token = re.search(r'name="query" value="([^"]+)"', page).group(1)
    refined = client.post("/", {"query": token, "type": "dress"}).content.decode()
    assert refined.count('type: </span>Dress</span>') == 2  # both demo dresses, nothing else
    assert 'type: </span>Shoes</span>' not in refined


def test_a_tampered_refine_token_gets_a_readable_message(client):
    response = client.post("/", {"query": "not-a-token", "type": "dress"})
    assert response.status_code == 400
    assert "upload the photo again" in response.content.decode()


def test_a_refine_value_the_form_never_offers_is_a_400_naming_it_not_unfiltered_results(client):
    token = query_token_make(np.ones(EMBEDDING_DIM, dtype=np.float32), {"type": [Prediction("shoes", 0.9)]})
    response = client.post("/", {"query": token, "type": "", "colour": "tartan"})
    assert response.status_code == 400
    assert "colour “tartan”" in response.content.decode()
    assert "Similar items" not in response.content.decode()


def test_a_long_unknown_refine_value_is_repeated_cut_and_marked_as_cut(client):
    token = query_token_make(np.ones(EMBEDDING_DIM, dtype=np.float32), {"type": [Prediction("shoes", 0.9)]})
    response = client.post("/", {"query": token, "colour": "tartan" * 20})
    assert response.status_code == 400
    assert f"colour “{('tartan' * 20)[:40]}...”" in response.content.decode()


def test_every_result_links_to_an_item_page_with_shop_link_similar_items_and_a_look(client, tagged_catalog):
    shoe = demo_photos(per_type=3)[6 * 3 + 2]
    page = client.post("/", {"image": upload(shoe)}).content.decode()
    item_links = set(re.findall(r'href="(/items/\d+/)"', page))
    assert len(item_links) >= 10
    item_page = client.get(sorted(item_links)[0])
    html = item_page.content.decode()
    assert item_page.status_code == 200
    assert "Similar items" in html and "Complete the look" in html


def test_item_endpoints_return_details_similar_items_and_a_look(client, tagged_catalog):
    shirt = Item.objects.get(import_key__startswith="shirt/", import_key__endswith=demo_photos(2)[10].name)
    pants = Item.objects.filter(import_key__startswith="pants/").first()
    Look.objects.create(name="Office").items.set([shirt, pants])

    detail = client.get(f"/api/v1/items/{shirt.pk}").json()
    similar = client.get(f"/api/v1/items/{shirt.pk}/similar?limit=3").json()["results"]
    look = client.get(f"/api/v1/items/{shirt.pk}/look").json()

    assert detail["tags"]["type"] == "shirt"
    assert len(similar) == 3 and shirt.pk not in {r["id"] for r in similar}
    bottoms = next(group for group in look["groups"] if group["place"] == "bottom")
    assert bottoms["items"][0]["id"] == pants.pk
    assert "curated look" in bottoms["items"][0]["reason"]
    assert client.get("/api/v1/items/999999").status_code == 404


def test_look_for_an_uploaded_photo_suggests_complements(client, tagged_catalog):
    shoe = demo_photos(per_type=3)[6 * 3 + 2]
    body = client.post("/api/v1/look", {"image": upload(shoe)}).json()
    assert body["tags"]["type"] == "shoes"
    assert {group["place"] for group in body["groups"]} <= {"top", "bottom", "dress", "outerwear"}
    assert body["groups"]


def test_text_search_page_and_api(client, tagged_catalog):
    body = client.get("/api/v1/search/text?q=hat").json()
    assert body["understood"] == {"type": "hat"}
    assert len(body["results"]) == 2
    assert client.get("/search/?q=hat").content.decode().count('type: </span>Hat</span>') == 2
    assert client.get("/api/v1/search/text?q=").status_code == 400


def test_text_search_page_links_to_more_results_and_the_api_pages_by_offset(client, tagged_catalog, settings):
    # given: pages of one item, and the demo catalog's two hats
    settings.SEARCH_RESULTS = 1

    # when / then: the first page links to the next, the second back, and not beyond
    first = client.get("/search/?q=hat").content.decode()
    assert 'href="?q=hat&amp;page=2" rel="next"' in first and 'rel="prev"' not in first
    second = client.get("/search/?q=hat&page=2").content.decode()
    assert 'href="?q=hat&amp;page=1" rel="prev"' in second and 'rel="next"' not in second
    assert first.count('type: </span>Hat</span>') == second.count('type: </span>Hat</span>') == 1

    # and the API says the same with offset and more
    pages = [client.get(f"/api/v1/search/text?q=hat&limit=1&offset={offset}").json() for offset in (0, 1)]
    assert [page["more"] for page in pages] == [True, False]
    assert pages[0]["results"][0]["id"] != pages[1]["results"][0]["id"]


def test_a_text_search_that_matches_nothing_names_its_words_that_match_on_their_own(client, tagged_catalog):
    # given words that each match items, and one that matches none
    page = client.get("/search/", {"q": "hat zqxv"}).content.decode()
    # then the page says every word must match, and links the word that matches alone
    assert 'No item matches "hat zqxv"' in page
    assert 'Every word must match. Items match <a href="?q=hat">hat</a> on its own.' in page


def test_a_text_search_of_many_words_that_matches_nothing_makes_no_search_per_word(client, tagged_catalog, monkeypatch):
    from catalog.services import text_search

    searches = []
    real_search = text_search.search_by_text
    monkeypatch.setattr(text_search, "search_by_text", lambda **kw: searches.append(kw) or real_search(**kw))
    page = client.get("/search/", {"q": " ".join(["hat"] + ["e"] * 98 + ["zqxv", "qqq", "www", "rrr", "ttt"])})
    assert "Every word must match" not in page.content.decode()
    assert searches == []  # the page's own search goes through the view's import, not counted here


def test_a_text_search_of_one_word_that_matches_nothing_suggests_nothing(client, tagged_catalog):
    page = client.get("/search/", {"q": "zqxv"}).content.decode()
    assert 'No item matches "zqxv"' in page and "Every word must match" not in page


@pytest.mark.parametrize("page", ["0", "x", "²", "9" * 5000])
def test_a_text_search_page_that_is_not_a_page_number_is_a_400_saying_so(client, page):
    response = client.get("/search/", {"q": "hat", "page": page})
    assert response.status_code == 400
    assert "a page is a whole number, 1 or more" in response.content.decode()


def test_a_text_search_page_past_the_deepest_one_served_is_a_400_that_invents_no_page_count(client):
    response = client.get("/search/", {"q": "hat", "page": "99999"})
    assert response.status_code == 400
    assert "Page 99999 is past the last one shown: results go up to page 834." in response.content.decode()


def test_search_js_gets_the_similar_items_first_and_complete_the_look_from_its_own_address(client, tagged_catalog):
    # given a photo of shoes sent as search.js sends it
    shoe = demo_photos(per_type=3)[6 * 3 + 2]
    panel = client.post("/", {"image": upload(shoe)}, headers={"X-Requested-With": "fetch"}).content.decode()

    # then the panel holds the results and only the address of the look
    assert 'id="similar-items"' in panel and "Complete the look" not in panel
    look_url = re.search(r'id="look-slot" data-src="([^"]+)"', panel).group(1).replace("&amp;", "&")
    assert look_url.startswith("/look/?type=shoes")

    # and that address answers the look, as the plain form's page shows it inline
    look = client.get(look_url)
    page = client.post("/", {"image": upload(shoe)}).content.decode()
    assert look.status_code == 200 and "Complete the look" in look.content.decode()
    assert "Complete the look" in page and 'id="look-slot"' not in page


def test_the_look_of_a_filter_that_does_not_exist_is_a_400_naming_the_ones_that_do(client):
    response = client.get("/look/", {"type": "shoes", "color": "red"})
    assert response.status_code == 400
    assert response.content.decode() == "There is no filter “color” (use type, pattern, colour, style)."


def test_the_look_of_a_tag_value_that_does_not_exist_is_a_400_naming_it(client):
    response = client.get("/look/", {"type": "shoes", "colour": "tartan"})
    assert response.status_code == 400
    assert response.content.decode() == "There is no colour “tartan”."
    assert response["Content-Type"] == "text/plain; charset=utf-8"  # its quotation marks are UTF-8
