"""Search by words: tag words become filters, other words match names."""

from __future__ import annotations

import pytest

from catalog.services.text_search import query_parse, search_by_text
from tests.catalog.test_coordination import _item


def test_tag_words_and_synonyms_become_filters():
    filters, words = query_parse("Red striped shirt from Lumen")
    assert filters == {"colour": "red", "pattern": "striped", "type": "shirt"}
    assert words == ["from", "lumen"]
    assert query_parse("grey plaid trousers")[0] == {"colour": "grey", "pattern": "check", "type": "pants"}


@pytest.mark.django_db
def test_text_search_finds_items_by_tags_and_name():
    wanted = _item("Lumen stripe", type="shirt", colour="red", pattern="striped")
    _item("Lumen plain", type="shirt", colour="red", pattern="plain")
    _item("Other stripe", type="shirt", colour="red", pattern="striped")
    understood, hits = search_by_text(query="red striped shirt lumen")
    assert understood == {"colour": "red", "pattern": "striped", "type": "shirt"}
    assert [hit.item for hit in hits] == [wanted]
    assert "colour: red" in hits[0].why
