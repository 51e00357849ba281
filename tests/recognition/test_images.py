"""Upload decoding: accepted formats by content, refusals with reasons, orientation."""

from __future__ import annotations

import io

import pytest
from PIL import Image

from recognition.errors import ImageTooLarge, InvalidImage
from recognition.images import decode_image, model_draft_size
from tests.conftest import jpeg_bytes

CAPS = {"max_bytes": 1_000_000, "max_pixels": 4_000_000}


def encoded(fmt: str, size=(40, 30), mode="RGB") -> bytes:
    buffer = io.BytesIO()
    Image.new(mode, size, "red").save(buffer, format=fmt)
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP", "GIF"])
def test_supported_formats_decode_to_rgb(fmt):
    image = decode_image(encoded(fmt, mode="P" if fmt == "GIF" else "RGB"), **CAPS)
    assert image.mode == "RGB"
    assert image.size == (40, 30)


def cut_out(fmt: str) -> bytes:
    """A red square on a fully transparent background, as product shots are often published."""
    image = Image.new("RGBA", (40, 40), (0, 0, 0, 0))
    image.paste((255, 0, 0, 255), (10, 10, 30, 30))
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **({"lossless": True} if fmt == "WEBP" else {}))
    return buffer.getvalue()


@pytest.mark.parametrize("fmt", ["PNG", "WEBP", "GIF"])
def test_a_transparent_background_decodes_white_as_a_browser_shows_it_not_black(fmt):
    image = decode_image(cut_out(fmt), **CAPS)
    assert image.getpixel((0, 0)) == (255, 255, 255)
    assert image.getpixel((20, 20)) == (255, 0, 0)


def test_a_16_bit_grey_png_keeps_its_grey_level_instead_of_clipping_to_white():
    buffer = io.BytesIO()
    Image.new("I;16", (8, 8), 40000).save(buffer, format="PNG")  # 61% grey
    assert decode_image(buffer.getvalue(), **CAPS).getpixel((0, 0)) == (156, 156, 156)


def test_format_is_judged_by_content_not_name():
    with pytest.raises(InvalidImage, match="Not a supported image"):
        decode_image(b"<html><body>hello</body></html>", **CAPS)


def test_empty_file_is_refused():
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"", **CAPS)


def test_truncated_jpeg_is_refused():
    data = encoded("JPEG", size=(400, 300))
    with pytest.raises(InvalidImage):
        decode_image(data[: len(data) // 3], **CAPS)


def test_file_over_the_byte_cap_is_refused():
    with pytest.raises(ImageTooLarge, match="photos can be up to"):
        decode_image(jpeg_bytes(), max_bytes=100, max_pixels=4_000_000)


def test_decompression_bomb_is_refused_from_its_header():
    # A 20000x20000 PNG of one colour compresses to a small file but would decode to 1.2 GB.
    bomb = encoded("PNG", size=(20000, 20000), mode="1")
    assert len(bomb) < 200_000
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(bomb, max_bytes=1_000_000, max_pixels=4_000_000)


def test_exif_orientation_is_applied():
    buffer = io.BytesIO()
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    Image.new("RGB", (60, 20), "blue").save(buffer, format="JPEG", exif=exif)
    image = decode_image(buffer.getvalue(), **CAPS)
    assert image.size == (20, 60)


@pytest.mark.parametrize(
    ("photo", "decoded"),
    [
        ((3024, 4032), (378, 504)),  # a 12-megapixel phone photo: 1/8 in the decoder
        ((768, 1024), (384, 512)),  # a 1024-px photo: 1/2
        ((448, 597), (448, 597)),  # 1/2 would leave 224, the input itself: decoded whole
        ((400, 533), (400, 533)),
    ],
)
def test_a_jpeg_for_the_model_is_decoded_small_but_never_down_to_the_input_size(photo, decoded):
    # the antialiased resize to 224 px always does the last step, of at least 1.5x
    image = decode_image(jpeg_bytes(photo), max_bytes=10**8, max_pixels=10**8, draft_size=model_draft_size(224))
    assert image.size == decoded
    assert min(image.size) >= 1.5 * 224
