"""The shapes an image may have: a shopper's upload neither far thinner than a photo nor too small to
tell a garment by; a catalog photo held to neither; no image of zero size."""

from __future__ import annotations

import struct
import zlib

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image

from recognition.errors import InvalidImage
from recognition.images import UPLOAD_MAX_ASPECT_RATIO, decode_image
from tests.recognition.image_helpers import CAPS, encoded, png_bomb


def test_an_upload_far_thinner_than_any_photo_is_refused_with_its_size():
    # given a PNG of 1x2,000,000 pixels (within the pixel cap; 1x40,000,000 took seconds to decode)
    thin = png_bomb(1, 2_000_000)
    # when / then
    with pytest.raises(InvalidImage, match=r"1x2000000 pixels, more than 20 times as long as it is wide"):
        decode_image(thin, max_bytes=10_000_000, max_pixels=4_000_000, max_aspect_ratio=UPLOAD_MAX_ASPECT_RATIO)


def test_a_panorama_upload_is_accepted():
    panorama = encoded("JPEG", Image.new("RGB", (800, 100), "red"))
    assert decode_image(panorama, **CAPS, max_aspect_ratio=UPLOAD_MAX_ASPECT_RATIO).size == (800, 100)


def test_an_upload_too_small_to_tell_a_garment_by_is_refused_with_its_size(client):
    tiny = encoded("PNG", Image.new("RGB", (16, 16), "blue"))
    response = client.post("/api/v1/search", {"image": SimpleUploadedFile("tiny.png", tiny)})
    assert response.status_code == 400
    assert "16x16 pixels, too small to tell a garment by" in response.json()["reason"]


def test_a_thin_catalog_photo_stays_taggable():
    # given a merchant's photo tagged before uploads had an aspect-ratio limit: decoded without one
    assert decode_image(png_bomb(1, 30), **CAPS).size == (1, 30)


def test_the_shopper_upload_path_applies_the_aspect_ratio_limit(client):
    response = client.post("/api/v1/search", {"image": SimpleUploadedFile("thin.png", png_bomb(40, 100_000))})
    assert response.status_code == 400
    assert "more than 20 times as long as it is wide" in response.json()["reason"]


def test_a_png_of_zero_width_is_refused_with_a_reason_that_names_no_internal_object():
    data = bytearray(encoded("PNG"))
    data[16:20] = struct.pack(">I", 0)  # IHDR's width
    data[29:33] = struct.pack(">I", zlib.crc32(bytes(data[12:29])))  # and its CRC, so only the width is wrong
    with pytest.raises(InvalidImage) as refusal:
        decode_image(bytes(data), **CAPS)
    assert "PNG header is corrupt" in refusal.value.message and "_io" not in refusal.value.message
