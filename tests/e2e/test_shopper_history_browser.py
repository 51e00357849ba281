"""The shopper's page and the browser's history: Back and Forward through refines, the skip link, a
second tap while a refine loads."""

from __future__ import annotations

import pytest

from tests.conftest import demo_photos
from tests.e2e.shopper_page import MIN_RESULTS, REFINED_TO_BLACK, upload, wait_for_results

pytestmark = pytest.mark.browser


def test_a_second_refine_while_the_first_loads_is_ignored_instead_of_reloading_the_page(desktop_page, query_photo):
    # given results on the page, and a colour chosen to refine them by
    page = desktop_page
    page.goto("/")
    upload(page, "#id_image", query_photo)
    wait_for_results(page)
    page.evaluate("window.notReloaded = true")
    page.select_option("form.refine select[name=colour]", "black")

    # when the shopper taps Refine, and again before the first answer came
    page.evaluate(
        """() => {
            const refine = document.querySelector('form.refine');
            refine.requestSubmit();
            window.refineDisabledWhileLoading = refine.querySelector('button').disabled;
            refine.requestSubmit();
        }"""
    )

    # then the button was disabled meanwhile, the page was not posted anew, and the refined results came
    page.wait_for_selector(REFINED_TO_BLACK, state="attached")
    page.wait_for_selector("#results[aria-busy=false]", state="attached")
    assert page.evaluate("window.refineDisabledWhileLoading") is True
    assert page.evaluate("window.notReloaded") is True


def test_back_steps_out_of_a_refine_and_the_results_come_back_after_an_item_page(desktop_page, query_photo):
    # given results, then the same refined to black
    page = desktop_page
    page.goto("/")
    upload(page, "#id_image", query_photo)
    wait_for_results(page)
    colour = "form.refine select[name=colour]"
    page.select_option(colour, "black")
    page.click("form.refine button")
    page.wait_for_selector(REFINED_TO_BLACK, state="attached")  # in the answer's HTML, not set by the click
    page.wait_for_selector("#results[aria-busy=false]", state="attached")

    # when the shopper goes back, then the unrefined results are there again, and forward the refined
    page.go_back()
    page.wait_for_function(f"document.querySelector('{colour}')?.value === ''")
    assert page.locator("#similar-items > .result").count() >= MIN_RESULTS
    assert page.locator("[data-query-photo] img[alt='Your photo']").count() == 1  # the shopper's photo, once
    page.go_forward()
    page.wait_for_selector(REFINED_TO_BLACK, state="attached")
    page.go_back()
    page.wait_for_function(f"document.querySelector('{colour}')?.value === ''")

    # and after opening an item and going back (the page loaded anew), the results are there again
    shown = page.locator("#similar-items > .result h3 a").first
    name = shown.inner_text()
    shown.click()
    page.wait_for_url("**/items/*/")
    page.go_back()
    page.wait_for_selector("#similar-items > .result h3 a")
    assert page.locator("#similar-items > .result h3 a").first.inner_text() == name
    assert page.locator(colour).input_value() == ""


def test_a_refine_after_going_back_to_an_earlier_photos_results_shows_that_photo(desktop_page):
    # given the results of photo A, then of photo B, and Back to A's
    page = desktop_page
    photo_a, photo_b = (demo_photos(per_type=3)[i].read_bytes() for i in (2, 5))
    page.goto("/")
    upload(page, "#id_image", photo_a, name="a.jpg")
    wait_for_results(page)
    shown = "document.querySelector('[data-query-photo] img')?.src"
    address_a = page.evaluate(shown)
    upload(page, "#id_image", photo_b, name="b.jpg")
    page.wait_for_function(f"{shown} && {shown} !== '{address_a}'")
    page.go_back()
    page.wait_for_function(f"{shown} === '{address_a}'")

    # when A's results are refined
    colour = "form.refine select[name=colour]"
    page.select_option(colour, "black")
    page.click("form.refine button")
    page.wait_for_selector(REFINED_TO_BLACK, state="attached")  # in the answer's HTML, not set by the click
    page.wait_for_selector("#results[aria-busy=false]", state="attached")

    # then photo A is shown beside them, not B, the last one sent
    assert page.evaluate(shown) == address_a


def test_the_skip_link_leaves_the_results_in_place(desktop_page, query_photo):
    page = desktop_page
    page.goto("/")
    upload(page, "#id_image", query_photo)
    wait_for_results(page)
    shown = page.locator("#similar-items > .result").count()
    # when a keyboard user follows "Skip to content" (an entry of the history without results)
    page.focus("a.skip-link")
    page.keyboard.press("Enter")
    page.wait_for_url("**/#main")
    # then the results stay
    assert page.locator("#similar-items > .result").count() == shown

    # and after a refine, one Back brings the unrefined results (not the refined ones again), photo once
    colour = "form.refine select[name=colour]"
    page.select_option(colour, "black")
    page.click("form.refine button")
    page.wait_for_selector(REFINED_TO_BLACK, state="attached")
    page.wait_for_selector("#results[aria-busy=false]", state="attached")
    page.go_back()
    page.wait_for_function(f"document.querySelector('{colour}')?.value === ''")
    assert page.locator("#similar-items > .result").count() == shown
    assert page.locator("[data-query-photo] img[alt='Your photo']").count() == 1
