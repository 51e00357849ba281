"""Complete the look: the stylist's rule book, then suggestions from a real catalog."""

from __future__ import annotations

import pytest

from catalog.models import Item, Look, Photo, Tag
from catalog.services.best_tags import tags_best_mark
from catalog.services.coordination import colours_go_together, look_suggest, pairing_score, styles_go_together


class TestRuleBook:
    def test_a_top_goes_with_bottoms_shoes_outerwear_and_a_hat(self):
        top = {"type": "t-shirt"}
        for other in ("pants", "shorts", "skirt", "shoes", "outwear", "hat"):
            assert pairing_score(top, {"type": other}) is not None, other

    def test_two_pieces_for_the_same_place_never_pair(self):
        assert pairing_score({"type": "t-shirt"}, {"type": "shirt"}) is None
        assert pairing_score({"type": "pants"}, {"type": "skirt"}) is None
        assert pairing_score({"type": "dress"}, {"type": "skirt"}) is None

    def test_neutrals_go_with_anything(self):
        for colour in ("red", "pink", "yellow", "green", "purple"):
            assert colours_go_together(colour, "navy") is not None
            assert colours_go_together("beige", colour) is not None

    def test_clashing_hues_are_left_out(self):
        assert colours_go_together("red", "pink") is None
        assert colours_go_together("orange", "purple") is None
        assert pairing_score({"type": "t-shirt", "colour": "red"}, {"type": "skirt", "colour": "pink"}) is None

    def test_the_same_style_scores_above_a_neighbouring_one_and_that_above_a_mismatch(self):
        assert styles_go_together("business", "business")[0] > styles_go_together("business", "formal")[0]
        assert styles_go_together("business", "formal")[0] > styles_go_together("business", "sporty")[0]

    def test_a_curated_look_lifts_a_pairing(self):
        plain = pairing_score({"type": "shirt"}, {"type": "pants"})
        curated = pairing_score({"type": "shirt"}, {"type": "pants"}, curated_together=1)
        assert curated[0] > plain[0]
        assert "curated look" in curated[1]


def _item(name: str, **tags: str) -> Item:
    item = Item.objects.create(name=name, shop_url=f"https://shop.example/{name}")
    photo = Photo.objects.create(item=item, image="photos/x.jpg", status=Photo.Status.TAGGED, embedding=b"\0" * 8)
    for attribute, value in tags.items():
        Tag.objects.create(photo=photo, attribute=attribute, value=value, source=Tag.Source.HAND)
    tags_best_mark(photo_ids=[photo.pk])  # as every writer of tags does
    return item


@pytest.mark.django_db
def test_look_for_a_shirt_groups_complements_and_ranks_curated_partners_first():
    shirt = _item("shirt", type="shirt", colour="white", style="business")
    chinos = _item("chinos", type="pants", colour="beige", style="business")
    curated_jeans = _item("jeans", type="pants", colour="blue", style="casual")
    _item("other-shirt", type="shirt", colour="blue", style="business")
    _item("loafers", type="shoes", colour="brown", style="business")
    look = Look.objects.create(name="Friday")
    look.items.set([shirt, curated_jeans])

    groups = look_suggest(anchor_tags={"type": "shirt", "colour": "white", "style": "business"}, anchor_item=shirt)

    assert list(groups) == ["bottom", "shoes"]
    assert [s.item for s in groups["bottom"]] == [curated_jeans, chinos]
    assert all(s.item.shop_url for group in groups.values() for s in group)
