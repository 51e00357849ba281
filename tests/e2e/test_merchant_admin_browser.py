"""A merchant in a real browser: logs in to the admin, adds an item with a photo and sees it tagged."""

from __future__ import annotations

import pytest

from tests.conftest import demo_photos
from tests.e2e.conftest import MERCHANT

pytestmark = pytest.mark.browser


def test_a_merchant_logs_in_adds_an_item_with_a_photo_and_sees_it_tagged(desktop_page):
    page = desktop_page
    hat = demo_photos(per_type=3)[5]  # hat folder, third photo: not in the served catalog

    # given a merchant logged in to the admin
    page.goto("/admin/")
    page.get_by_label("Username").fill(MERCHANT[0])
    page.get_by_label("Password").fill(MERCHANT[1])
    with page.expect_navigation():
        page.get_by_role("button", name="Log in").click()
    assert page.get_by_role("link", name="Items", exact=True).is_visible()

    # when they add an item with a photo
    page.goto("/admin/catalog/item/add/")
    page.get_by_label("Name").fill("Browser-added wool hat")
    page.get_by_label("Price").fill("24.90")
    page.get_by_label("Shop url").fill("https://shop.example.com/products/wool-hat")
    page.set_input_files("input[name=photos-0-image]", str(hat))
    with page.expect_navigation():
        page.get_by_role("button", name="Save and continue editing").click()

    # then the saved item's photo shows as tagged, with its type, score and source
    assert "was added successfully" in page.locator(".messagelist").inner_text()
    photo_row = page.locator(".inline-related tbody tr.has_original").first
    assert "Tagged" in photo_row.inner_text()
    assert "type: hat" in photo_row.inner_text()
    assert "Model" in photo_row.inner_text()

    # and the photo list counts it among the tagged photos
    page.goto("/admin/catalog/photo/")
    assert "Failed: 0" in page.locator("#content").inner_text()
