"""What a shopper reads on result cards and item pages."""

from __future__ import annotations

import pytest

from catalog.models import Item
from tests.catalog.test_coordination import _item

pytestmark = pytest.mark.django_db


def test_tags_show_their_display_names_not_the_models_label_names(client):
    # given a coat the model calls "outwear"
    coat = _item("Harbour coat", type="outwear", colour="navy")

    # when the shopper searches by words and opens the item
    results = client.get("/search/", {"q": "navy coat"}).content.decode()
    page = client.get(f"/items/{coat.pk}/").content.decode()

    # then both say "Outerwear", with the attribute readable to screen readers on the card
    assert '<span class="visually-hidden">type: </span>Outerwear' in results
    assert "type: Outerwear" in page
    assert "outwear" not in results and "outwear" not in page


def test_a_price_of_zero_is_shown_on_the_item_page(client):
    freebie = Item.objects.create(name="Sample tote", price="0.00", currency="EUR")

    page = client.get(f"/items/{freebie.pk}/").content.decode()

    assert '<p class="price">0.00 EUR</p>' in page
