"""Hostile uploads: every file is made here. Bombs, polyglots, disguises, truncation; what is accepted.

The rule for polyglots is in recognition/images.py's docstring: one image and nothing else, at most
MAX_TRAILING_BYTES after the format's end marker, and no markup, script or archive inside or after it.
"""

from __future__ import annotations

import io
import random
import struct
import subprocess
import sys
import textwrap
import zipfile
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from PIL import Image, PngImagePlugin

from recognition.errors import ImageTooLarge, InvalidImage
from recognition.images import MAX_TRAILING_BYTES, decode_image
from tests.recognition.image_helpers import CAPS, encoded, png_bomb

ROOT = Path(__file__).resolve().parents[2]


def animated(fmt: str) -> bytes:
    """Two frames: red first, blue second."""
    first, second = Image.new("RGB", (40, 30), "red"), Image.new("RGB", (40, 30), "blue")
    return encoded(fmt, first, save_all=True, append_images=[second], duration=100, loop=0)


def with_header_size(data: bytes, fmt: str, width: int, height: int) -> bytes:
    """A small real image whose header claims width x height (the pixel data stays tiny)."""
    patched = bytearray(data)
    if fmt == "JPEG":
        sof = patched.index(b"\xff\xc0")
        patched[sof + 5 : sof + 9] = struct.pack(">HH", height, width)
    elif fmt == "GIF":
        patched[6:10] = struct.pack("<HH", width, height)
    elif fmt == "WEBP":  # lossless: 14 bits width-1, 14 bits height-1 after the 0x2f signature
        bits = struct.unpack_from("<I", patched, 21)[0] & ~((1 << 28) - 1)
        patched[21:25] = struct.pack("<I", bits | (width - 1) | ((height - 1) << 14))
    return bytes(patched)


def zip_bytes() -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("payload.html", "<script>alert(1)</script>")
    return buffer.getvalue()


# --- Accepted: four formats, judged by content; the first frame; upright ------------------------------


@pytest.mark.parametrize("fmt", ["GIF", "WEBP"])
def test_an_animated_image_decodes_to_its_first_frame(fmt):
    image = decode_image(animated(fmt), **CAPS)
    red, green, blue = image.getpixel((5, 5))
    assert red > 200 and blue < 50


def test_a_multi_picture_jpeg_from_a_phone_decodes_to_its_primary_image():
    # Ultra HDR and stereo cameras write MPO: the primary JPEG, then further JPEGs after its end marker.
    mpo = encoded("MPO", Image.new("RGB", (40, 30), "red"), save_all=True, append_images=[Image.new("RGB", (40, 30))])
    assert decode_image(mpo, **CAPS).getpixel((5, 5))[0] > 200


def test_a_progressive_jpeg_is_accepted():
    assert decode_image(encoded("JPEG", progressive=True), **CAPS).size == (64, 48)


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "WEBP"])
def test_exif_orientation_is_applied_in_every_format_that_carries_it(fmt):
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90° clockwise to display
    image = decode_image(encoded(fmt, Image.new("RGB", (60, 20), "blue"), exif=exif), **CAPS)
    assert image.size == (20, 60)


def test_a_few_bytes_of_padding_after_the_image_are_tolerated():
    padded = encoded("JPEG") + b"\x00" * 64
    assert decode_image(padded, **CAPS).size == (64, 48)


# --- Decompression bombs: refused from the header, before decoding -----------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "GIF", "WEBP"])
def test_a_header_claiming_too_many_pixels_is_refused_before_decoding(fmt):
    # given a tiny file whose header claims 3000x3000 pixels, over the 4,000,000-pixel cap
    small = encoded(fmt, Image.new("RGB", (8, 8), "red"), **({"lossless": True} if fmt == "WEBP" else {}))
    claimed = with_header_size(small, fmt, 3000, 3000)
    # when / then
    with pytest.raises(ImageTooLarge, match="pixels"):
        decode_image(claimed, **CAPS)


def test_a_png_bomb_is_refused_without_using_much_memory(tmp_path):
    # given a 40 kB PNG that would decode to 900 million pixels (2.7 GB as RGB)
    bomb = tmp_path / "bomb.png"
    bomb.write_bytes(png_bomb(30_000, 30_000))
    assert bomb.stat().st_size < 200_000
    # when it is decoded in a fresh process that reports how much its peak memory grew
    script = textwrap.dedent(
        f"""
        import resource, sys
        sys.path.insert(0, {str(ROOT)!r})
        from recognition.errors import ImageTooLarge
        from recognition.images import decode_image
        data = open({str(bomb)!r}, "rb").read()
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        try:
            decode_image(data, max_bytes=10_000_000, max_pixels=40_000_000)
        except ImageTooLarge:
            print("refused", resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before)
        """
    )
    output = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=60, check=True)
    # then it is refused and the peak grew by less than 20 MB (ru_maxrss is in KiB on Linux)
    verdict, grown_kib = output.stdout.split()
    assert verdict == "refused"
    assert int(grown_kib) < 20 * 1024


@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_a_file_of_millions_of_tiny_segments_is_refused_without_walking_them_all(fmt):
    # given 2 MB of the smallest pieces the format allows: empty JPEG comments, 1-byte GIF sub-blocks,
    # which would keep the structure walk (and Pillow's parser) busy for seconds
    image = encoded(fmt)
    if fmt == "JPEG":
        data = image[:2] + b"\xff\xfe\x00\x02" * 500_000 + image[2:]
    else:
        data = image[:-1] + b"\x21\xfe" + b"\x01a" * 1_000_000 + b"\x00\x3b"
    # when / then: the walk's step budget, proportional to the file size, runs out
    with pytest.raises(InvalidImage, match="implausibly many tiny segments"):
        decode_image(data, max_bytes=10_000_000, max_pixels=4_000_000)


def test_a_jpeg_of_nothing_but_fill_bytes_is_refused_as_truncated():
    data = b"\xff\xd8" + b"\xff" * 5_000_000
    with pytest.raises(InvalidImage, match="truncated"):
        decode_image(data, max_bytes=10_000_000, max_pixels=4_000_000)


# --- Truncated, corrupt, empty, disguised ------------------------------------------------------------


@pytest.mark.parametrize("fmt", ["JPEG", "PNG", "GIF", "WEBP"])
def test_a_truncated_image_is_refused(fmt):
    data = encoded(fmt, Image.effect_noise((200, 150), 50).convert("RGB"))
    with pytest.raises(InvalidImage, match="truncated"):
        decode_image(data[: len(data) * 2 // 3], **CAPS)


def test_a_corrupt_png_header_is_refused():
    data = bytearray(encoded("PNG"))
    data[20] ^= 0xFF  # inside IHDR: its CRC no longer matches
    with pytest.raises(InvalidImage):
        decode_image(bytes(data), **CAPS)


def test_image_magic_followed_by_garbage_is_refused():
    with pytest.raises(InvalidImage):
        decode_image(b"\x89PNG\r\n\x1a\n" + bytes(range(256)) * 4, **CAPS)


def test_an_empty_file_is_refused():
    with pytest.raises(InvalidImage, match="empty"):
        decode_image(b"", **CAPS)


@pytest.mark.parametrize(
    "document",
    [
        b"<!DOCTYPE html><html><body><script>alert(1)</script></body></html>",
        b"\n  <svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
        b"\xef\xbb\xbf<?xml version='1.0'?><svg xmlns='http://www.w3.org/2000/svg'/>",
    ],
    ids=["html", "svg-after-whitespace", "svg-after-bom"],
)
def test_markup_disguised_as_a_photo_is_refused_with_a_reason(document):
    with pytest.raises(InvalidImage, match="markup document"):
        decode_image(document, **CAPS)


def test_image_magic_in_front_of_html_is_refused():
    with pytest.raises(InvalidImage):
        decode_image(b"GIF89a<html><script>alert(1)</script></html>", **CAPS)


# --- Polyglots: a valid image that is also something else --------------------------------------------


@pytest.mark.parametrize(
    ("fmt", "payload"),
    [
        ("JPEG", b"<html><script>alert(document.cookie)</script></html>"),
        ("PNG", None),  # a ZIP archive, as in JAR/ZIP polyglots
        ("GIF", b"%PDF-1.7\n1 0 obj <<>> endobj\ntrailer <<>>\n%%EOF"),
        ("WEBP", b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>"),
    ],
)
def test_an_image_with_markup_or_an_archive_appended_is_refused(fmt, payload):
    data = encoded(fmt) + (payload if payload is not None else zip_bytes())
    with pytest.raises(InvalidImage, match="hides other content"):
        decode_image(data, **CAPS)


def test_script_hidden_in_a_jpeg_comment_is_refused():
    data = encoded("JPEG", comment=b"<script>alert(1)</script>")
    with pytest.raises(InvalidImage, match="hides other content"):
        decode_image(data, **CAPS)


def test_html_hidden_in_a_png_text_chunk_is_refused():
    info = PngImagePlugin.PngInfo()
    info.add_text("Comment", "<html><body onload=alert(1)></body></html>")
    with pytest.raises(InvalidImage, match="hides other content"):
        decode_image(encoded("PNG", pnginfo=info), **CAPS)


def test_an_image_with_a_large_appended_payload_is_refused():
    # given a JPEG followed by 100 kB of opaque bytes (a payload, or a motion photo's video)
    data = encoded("JPEG") + bytes(range(256)) * 400
    # when / then: the rule is at most MAX_TRAILING_BYTES after the image data
    with pytest.raises(InvalidImage, match=f"at most {MAX_TRAILING_BYTES}"):
        decode_image(data, **CAPS)


# --- Over HTTP: a 400 or 413 with a reason; nothing of the photo is kept ----------------------------


@pytest.fixture
def no_rate_limits(settings):
    settings.RATELIMIT_ENABLE = False


def photo(data: bytes, name: str = "photo.jpg") -> SimpleUploadedFile:
    return SimpleUploadedFile(name, data, content_type="image/jpeg")


HOSTILE_UPLOADS = {
    "empty": b"",
    "truncated": encoded("JPEG", Image.effect_noise((200, 150), 50).convert("RGB"))[:3000],
    "corrupt": b"\xff\xd8\xff\xe0" + bytes(range(256)) * 8,
    "html-named-jpg": b"<html><body>hello</body></html>",
    "svg-named-jpg": b"<svg xmlns='http://www.w3.org/2000/svg' onload='alert(1)'/>",
    "jpeg-html-polyglot": encoded("JPEG") + b"<html><script>alert(1)</script></html>",
    "png-zip-polyglot": encoded("PNG") + zip_bytes(),
}


@pytest.mark.django_db
@pytest.mark.usefixtures("no_rate_limits")
@pytest.mark.parametrize("name", list(HOSTILE_UPLOADS))
@pytest.mark.parametrize("url", ["/api/v1/search", "/api/v1/recognize"])
def test_a_hostile_upload_gets_a_400_with_a_reason_from_the_api(client, url, name):
    response = client.post(url, {"image": photo(HOSTILE_UPLOADS[name])})
    assert response.status_code == 400
    assert response.json()["error"] == "invalid_image"
    assert response.json()["reason"]


@pytest.mark.django_db
@pytest.mark.usefixtures("no_rate_limits")
@pytest.mark.parametrize("name", ["empty", "svg-named-jpg", "jpeg-html-polyglot"])
def test_a_hostile_upload_gets_a_400_with_a_readable_reason_on_the_shopper_page(client, name):
    response = client.post("/", {"image": photo(HOSTILE_UPLOADS[name])})
    assert response.status_code == 400
    assert 'role="alert"' in response.content.decode()


@pytest.mark.django_db
@pytest.mark.usefixtures("no_rate_limits")
def test_a_png_named_like_a_jpeg_is_judged_by_its_content(client):
    response = client.post("/api/v1/recognize?model=type", {"image": photo(encoded("PNG"), name="photo.jpg")})
    assert response.status_code == 200


@pytest.mark.django_db
@pytest.mark.usefixtures("no_rate_limits")
def test_a_body_over_the_cap_is_refused_with_413_before_it_is_read(client, settings):
    # given a cap of 1000 bytes (plus 1 MiB of form overhead) and a 2 MB upload
    settings.MAX_UPLOAD_BYTES = 1000
    response = client.post("/api/v1/search", {"image": photo(b"\xff\xd8\xff" + b"\x00" * 2_000_000)})
    # then the upload handler refuses it from its Content-Length, before the image decoder (whose reason
    # names bytes) sees it
    assert response.status_code == 413
    assert response.json()["error"] == "image_too_large"
    assert response.json()["reason"].startswith("The photo is too large: photos can be up to")


@pytest.mark.django_db
@pytest.mark.usefixtures("no_rate_limits")
def test_shopper_photos_leave_no_file_behind_by_default(client, settings, tmp_path):
    # given Django told to spool uploads over 1 kB to a folder that does not exist (Django's default
    # handlers would write a temporary file there, and fail)
    settings.FILE_UPLOAD_MAX_MEMORY_SIZE = 1000
    settings.FILE_UPLOAD_TEMP_DIR = str(tmp_path / "no-such-dir")
    settings.SHOPPER_UPLOADS_DIR = tmp_path / "kept"
    big = encoded("PNG", Image.frombytes("RGB", (400, 300), random.Random(0).randbytes(400 * 300 * 3)))
    # when photos are searched on the page and through the API
    assert client.post("/", {"image": photo(big, name="big.png")}).status_code == 200
    assert client.post("/api/v1/search", {"image": photo(encoded("JPEG"))}).status_code == 200
    # then nothing was written: no temporary file, no kept photo, nothing in MEDIA_ROOT
    assert not (tmp_path / "no-such-dir").exists()
    assert not (tmp_path / "kept").exists()
    media = Path(settings.MEDIA_ROOT)
    assert not media.exists() or not any(path.is_file() for path in media.rglob("*"))


@pytest.mark.django_db
@pytest.mark.usefixtures("no_rate_limits")
def test_shopper_photos_are_kept_as_plain_jpegs_when_settings_say_so(client, settings, tmp_path):
    # given KEEP_SHOPPER_UPLOADS on and a photo that carries EXIF metadata
    settings.KEEP_SHOPPER_UPLOADS = True
    settings.SHOPPER_UPLOADS_DIR = tmp_path / "kept"
    exif = Image.Exif()
    exif[0x010F] = "PhoneMaker"
    # when it is searched
    response = client.post("/api/v1/search", {"image": photo(encoded("JPEG", exif=exif))})
    # then one re-encoded JPEG is kept, without the uploaded metadata, outside MEDIA_ROOT
    assert response.status_code == 200
    kept = list((tmp_path / "kept").rglob("*.jpg"))
    assert len(kept) == 1
    with Image.open(kept[0]) as image:
        assert image.size == (64, 48)
        assert not image.getexif()
    assert not str(kept[0]).startswith(str(settings.MEDIA_ROOT))


@pytest.mark.django_db
@pytest.mark.usefixtures("no_rate_limits")
@pytest.mark.parametrize("fmt", ["JPEG", "GIF"])
def test_a_kept_shopper_photo_carries_no_text_of_the_upload(client, settings, tmp_path, fmt):
    # given KEEP_SHOPPER_UPLOADS on and a photo whose comment names its owner
    settings.KEEP_SHOPPER_UPLOADS = True
    settings.SHOPPER_UPLOADS_DIR = tmp_path / "kept"
    # when it is searched
    response = client.post("/api/v1/search", {"image": photo(encoded(fmt, comment=b"Jane Doe, 12 High St"))})
    # then the kept JPEG holds the pixels and nothing of that text
    assert response.status_code == 200
    (kept,) = (tmp_path / "kept").rglob("*.jpg")
    assert b"Jane Doe" not in kept.read_bytes()


@pytest.mark.django_db
@pytest.mark.usefixtures("no_rate_limits")
def test_a_shopper_photo_that_cannot_be_kept_is_logged_and_the_search_still_answers(
    client, settings, tmp_path, caplog
):
    # given KEEP_SHOPPER_UPLOADS on, and a file where its folder should be (as a full or broken disk)
    settings.KEEP_SHOPPER_UPLOADS = True
    (tmp_path / "kept").write_text("not a folder")
    settings.SHOPPER_UPLOADS_DIR = tmp_path / "kept"
    # when / then: the search answers, and the log says the photo was not kept
    for address in ("/api/v1/search", "/"):
        assert client.post(address, {"image": photo(encoded("JPEG"))}).status_code == 200
    assert caplog.text.count("shopper photo not kept") == 2
