"""A plain frame around a rectangular picture is removed; a garment cut out on white, and a photo
without a frame, are left as they are."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageOps

from recognition.frames import frame_removed, picture_box
from recognition.images import decode_image
from tests.recognition.image_helpers import CAPS, encoded


def photo(width: int = 300, height: int = 400) -> Image.Image:
    """A photo-like picture: textured content up to every edge."""
    rng = np.random.default_rng(0)
    pixels = rng.integers(40, 200, size=(height, width, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def test_a_picture_in_a_white_frame_is_cut_out_of_it():
    framed = ImageOps.expand(photo(), border=(150, 60), fill="white")

    left, top, right, bottom = picture_box(framed)

    assert abs(left - 150) <= 6 and abs(top - 60) <= 6
    assert abs(right - 450) <= 6 and abs(bottom - 460) <= 6


def test_a_letterboxed_picture_loses_its_bars_only():
    letterboxed = ImageOps.expand(photo(), border=(0, 120), fill="black")

    left, top, right, bottom = picture_box(letterboxed)

    assert (left, right) == (0, 300)
    assert abs(top - 120) <= 6 and abs(bottom - 520) <= 6


def test_a_garment_cut_out_on_white_keeps_its_background():
    product = Image.new("RGB", (400, 500), "white")
    ImageDraw.Draw(product).ellipse((80, 60, 320, 440), fill=(20, 40, 120))

    assert picture_box(product) is None


def test_a_photo_without_a_frame_and_one_with_a_hairline_are_left_alone():
    assert picture_box(photo()) is None
    assert picture_box(ImageOps.expand(photo(), border=3, fill="white")) is None


def test_decoding_removes_the_frame_so_every_model_sees_the_picture():
    framed = ImageOps.expand(photo(), border=100, fill="white")

    decoded = decode_image(encoded("JPEG", framed, quality=95), **CAPS)

    assert abs(decoded.width - 300) <= 12 and abs(decoded.height - 400) <= 12
    assert frame_removed(photo()).size == (300, 400)


def test_a_flat_coloured_rectangle_on_white_is_a_product_shot_not_a_framed_photo():
    product = Image.new("RGB", (400, 500), "white")
    product.paste((200, 20, 20), (80, 60, 320, 440))

    assert picture_box(product) is None
    # nor once JPEG has added its noise
    assert picture_box(decode_image(encoded("JPEG", product, quality=75), **CAPS)) is None
    assert decode_image(encoded("JPEG", product, quality=75), **CAPS).size == (400, 500)


def test_a_picture_smaller_than_an_upload_may_be_stays_in_its_frame():
    # a 20 px picture on a white page: cut out, it would be smaller than any upload is allowed to be
    page = ImageOps.expand(photo(20, 20), border=200, fill="white")

    assert frame_removed(page).size == page.size
