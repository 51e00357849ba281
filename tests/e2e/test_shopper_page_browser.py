"""The shopper's page in a real browser: phone and desktop, with JavaScript and without."""

from __future__ import annotations

import base64
import io
import re
from email.parser import BytesParser
from email.policy import HTTP

import numpy as np
import pytest
from PIL import Image
from playwright.sync_api import FileChooser
from playwright.sync_api import TimeoutError as PlaywrightTimeoutError

from tests.e2e.conftest import SHOP_HOST, new_page, screenshot
from tests.e2e.shopper_page import MIN_RESULTS, upload, wait_for_results

pytestmark = pytest.mark.browser

# Records each state of the busy line and of the results' aria-busy while a search runs.
RECORD_BUSY_STATES = """
window.busyStates = [];
new MutationObserver(() => window.busyStates.push({
  text: document.getElementById('busy').textContent,
  busy: document.getElementById('results').getAttribute('aria-busy'),
})).observe(document.getElementById('search-form'), {subtree: true, childList: true, attributes: true});
"""


def _phone_photo_with_exif_rotation() -> bytes:
    """A 12-megapixel JPEG stored landscape, left half red and right half blue, with EXIF orientation 6.

    Shown upright (rotated 90° clockwise) it is portrait 3024 x 4032, red on top and blue below.
    """
    rng = np.random.default_rng(0)
    width, height = 4032, 3024
    pixels = np.empty((height, width, 3), np.int16)
    pixels[:, : width // 2] = (200, 30, 40)
    pixels[:, width // 2 :] = (30, 60, 200)
    pixels += rng.integers(-12, 13, size=(height, width, 1), dtype=np.int16)  # sensor-like grain
    exif = Image.Exif()
    exif[0x0112] = 6
    buffer = io.BytesIO()
    Image.fromarray(np.clip(pixels, 0, 255).astype(np.uint8)).save(buffer, "JPEG", quality=92, exif=exif)
    return buffer.getvalue()


def _uploaded_image(request) -> bytes:
    """The `image` part of a multipart request body."""
    head = f"Content-Type: {request.headers['content-type']}\r\n\r\n".encode()
    message = BytesParser(policy=HTTP).parsebytes(head + request.post_data_buffer)
    for part in message.iter_parts():
        if part.get_param("name", header="content-disposition") == "image":
            return part.get_payload(decode=True)
    raise AssertionError("no image part in the upload")


def test_uploading_a_photo_shows_scored_tags_and_ten_results_that_link_to_the_shop(desktop_page, query_photo):
    # given the shopper page on a desktop
    page = desktop_page
    page.goto("/")
    page.evaluate(RECORD_BUSY_STATES)

    # when a garment photo is chosen
    upload(page, "#id_image", query_photo)

    # then a busy state shows while the request runs
    wait_for_results(page)
    assert {"text": "Looking at your photo…", "busy": "true"} in page.evaluate("window.busyStates")
    # and tags with scores and at least ten results appear, without a page load
    assert page.evaluate("window.busyStates") is not None  # the page was not reloaded
    type_tags = page.locator(".predictions .tag")
    assert "Dress" in type_tags.first.inner_text()
    assert re.fullmatch(r"[01]\.\d\d", type_tags.first.locator(".score").inner_text())
    assert page.locator(".results .result").count() >= MIN_RESULTS
    assert page.locator("[data-query-photo] img[alt='Your photo']").count() == 1
    # and the status line counts the similar items only, not the "Complete the look" cards below them
    similar = page.locator("#similar-items > .result").count()
    assert similar >= MIN_RESULTS
    assert page.locator("#busy").inner_text() == f"Found {similar} similar items."
    # and Complete the look follows below them, fetched after they are shown
    page.wait_for_selector("#look-slot #look-title")
    assert page.locator("#look-slot .result").count() >= 1
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "desktop-results.jpg")

    # and a result's link leads to its shop page
    link = page.locator(".results .buy").first
    href = link.get_attribute("href")
    assert SHOP_HOST in href
    link.click()
    page.wait_for_url(href)
    assert page.locator("h1").inner_text() == "Product page"


def test_the_phone_page_offers_the_camera_and_fits_the_screen_without_sideways_scrolling(phone_page, query_photo):
    # given the shopper page on a 390 x 844 phone
    page = phone_page
    page.goto("/")
    camera = page.locator("#id_camera")
    assert page.get_by_text("Take a photo").is_visible()
    assert camera.get_attribute("accept") == "image/*" and camera.get_attribute("capture") == "environment"
    assert page.get_by_text("Choose a photo").is_visible()

    # when a photo is taken with the camera input
    upload(page, "#id_camera", query_photo)

    # then the results fit the width of the screen
    wait_for_results(page)
    assert page.evaluate("document.documentElement.scrollWidth") <= 390
    assert page.evaluate("document.body.scrollWidth") <= 390
    page.evaluate("window.scrollTo(0, 0)")
    screenshot(page, "phone-results.jpg")


def test_every_image_has_alt_text_and_every_control_a_label(desktop_page, query_photo):
    page = desktop_page
    page.goto("/")
    upload(page, "#id_image", query_photo)
    wait_for_results(page)

    images_without_alt = page.evaluate("[...document.images].filter(i => !i.alt.trim()).map(i => i.src)")
    unlabelled = page.evaluate(
        "[...document.querySelectorAll('input:not([type=hidden]), select, textarea')]"
        ".filter(c => !c.labels.length && !c.getAttribute('aria-label')).map(c => c.outerHTML)"
    )
    assert images_without_alt == []
    assert unlabelled == []


def test_a_non_image_upload_shows_a_readable_message_and_the_page_still_works(phone_page, query_photo):
    # given the shopper page
    page = phone_page
    page.goto("/")

    # when a PDF is uploaded
    upload(page, "#id_image", b"%PDF-1.4 not a photo", name="receipt.pdf", mime="application/pdf")

    # then a readable message says why, and no results are shown
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "Not a supported image" in alert.inner_text()
    assert page.locator(".results .result").count() == 0

    # and a photo uploaded next still finds results
    upload(page, "#id_image", query_photo)
    wait_for_results(page)
    assert page.get_by_role("alert").count() == 0


def test_a_page_whose_session_expired_says_to_reload_instead_of_showing_the_servers_error_page(
    desktop_page, query_photo
):
    # given the shopper page, whose CSRF cookie is then gone (cleared, or blocked by the browser)
    page = desktop_page
    page.goto("/")
    page.context.clear_cookies()

    # when a photo is sent
    upload(page, "#id_image", query_photo)

    # then the page says what to do, and nothing of Django's 403 page is put into it
    alert = page.get_by_role("alert")
    alert.wait_for()
    assert "This page has expired. Reload it" in alert.inner_text()
    assert "CSRF" not in page.content()
    assert page.locator(".results .result").count() == 0


def test_a_large_phone_photo_is_downscaled_upright_before_upload(phone_page):
    # given a 12-megapixel photo that needs its EXIF rotation to stand upright
    original = _phone_photo_with_exif_rotation()
    page = phone_page
    page.goto("/")

    # when it is taken with the camera input
    with page.expect_request(lambda r: r.method == "POST") as sending:
        upload(page, "#id_camera", original, name="IMG_0001.jpg")
    sent = _uploaded_image(sending.value)

    # then a small fraction of it travels: a JPEG of 448 px on its shorter side (what the server
    # decodes at most), upright (red on top, blue below)
    image = Image.open(io.BytesIO(sent))
    assert image.size == (448, 597)
    assert len(sent) <= len(original) / 30
    top, bottom = image.convert("RGB").getpixel((224, 60)), image.convert("RGB").getpixel((224, 537))
    assert top[0] > 150 > top[2] and bottom[2] > 150 > bottom[0]
    # and the server answers it like any other photo
    page.locator("#results .predictions").wait_for()


def test_a_photo_in_a_format_the_server_does_not_read_is_sent_as_a_jpeg_the_browser_redrew(phone_page, query_photo):
    # given a small BMP (as some desktop tools save; HEIC on Safari and AVIF on Chrome take the same
    # path): under 448 px and 512 KB, so a JPEG of this size would go up as it is
    bmp = io.BytesIO()
    Image.open(io.BytesIO(query_photo)).convert("RGB").resize((300, 400)).save(bmp, "BMP")
    page = phone_page
    page.goto("/")

    # when it is chosen
    with page.expect_request(lambda r: r.method == "POST") as sending:
        upload(page, "#id_camera", bmp.getvalue(), name="garment.bmp", mime="image/bmp")

    # then it travels as a JPEG of the same size, and the server answers it like any other photo
    sent = Image.open(io.BytesIO(_uploaded_image(sending.value)))
    assert (sent.format, sent.size) == ("JPEG", (300, 400))
    wait_for_results(page)


def test_a_photo_dropped_or_pasted_on_the_desktop_page_is_searched(desktop_page, query_photo):
    page = desktop_page
    page.goto("/")
    assert page.get_by_text("or drop or paste an image here").is_visible()
    assert not page.get_by_text("Take a photo").is_visible()  # no camera button on a desktop
    make_file = (
        "b64 => { const dt = new DataTransfer(); const bytes = Uint8Array.from(atob(b64), c => c.charCodeAt(0));"
        " dt.items.add(new File([bytes], 'drop.jpg', {type: 'image/jpeg'})); return dt; }"
    )
    encoded = base64.b64encode(query_photo).decode()

    # when a photo is dropped on the drop zone
    page.locator("#drop-zone").dispatch_event("drop", {"dataTransfer": page.evaluate_handle(make_file, encoded)})
    # then results appear
    wait_for_results(page)

    # when the results are cleared and a photo is pasted
    page.evaluate("document.getElementById('results').innerHTML = ''")
    page.evaluate(
        f"b64 => document.dispatchEvent(new ClipboardEvent('paste', {{clipboardData: ({make_file})(b64)}}))",
        encoded,
    )
    # then results appear again
    wait_for_results(page)


def _file_chooser_opened_by(page, key: str, attempts: int = 3) -> FileChooser:
    """Headless Chromium now and then drops the first key that should open a file chooser (a known
    Playwright flake); a key that never opens one still fails on the last attempt."""
    for _ in range(attempts - 1):
        try:
            with page.expect_file_chooser(timeout=5_000) as chooser:
                page.keyboard.press(key)
            return chooser.value
        except PlaywrightTimeoutError:
            continue
    with page.expect_file_chooser(timeout=5_000) as chooser:
        page.keyboard.press(key)
    return chooser.value


def test_the_page_works_from_the_keyboard(desktop_page, query_photo):
    # given the shopper page and only a keyboard
    page = desktop_page
    page.goto("/")

    # when Tab reaches the file picker and Space opens it
    for _ in range(6):
        page.keyboard.press("Tab")
        if page.evaluate("document.activeElement.id") == "id_image":
            break
    assert page.evaluate("document.activeElement.id") == "id_image"
    chooser = _file_chooser_opened_by(page, "Space")
    chooser.set_files(files=[{"name": "q.jpg", "mimeType": "image/jpeg", "buffer": query_photo}])

    # then results appear and focus moves to them, so that Tab goes on into the results
    wait_for_results(page)
    assert page.evaluate("document.activeElement.id") == "results"
    page.keyboard.press("Tab")
    assert page.evaluate("document.getElementById('results').contains(document.activeElement)")

    # and a result's shop link is reached with Tab and followed with Enter
    for _ in range(20):
        if page.evaluate("document.activeElement.classList.contains('buy')"):
            break
        page.keyboard.press("Tab")
    href = page.evaluate("document.activeElement.href")
    assert SHOP_HOST in href
    page.keyboard.press("Enter")
    page.wait_for_url(href)


def test_without_javascript_the_plain_form_still_works(browser, served_app, query_photo):
    # given a browser with JavaScript switched off
    page = new_page(browser, served_app, {"viewport": {"width": 1280, "height": 800}}, java_script_enabled=False)
    try:
        page.goto("/")
        # when a file is chosen and the form is submitted
        upload(page, "#id_image", query_photo)
        with page.expect_navigation():
            page.get_by_role("button", name="Find similar").click()
        # then the server renders the whole page with the results
        assert page.locator(".results .result").count() >= MIN_RESULTS
        assert "Dress" in page.locator(".predictions").inner_text()
    finally:
        page.context.close()
