"""What phones write: a motion photo is searched by its picture; HEIC and AVIF are refused by name."""

from __future__ import annotations

import io

import numpy as np
import pytest
from PIL import Image, features

from recognition.errors import InvalidImage
from recognition.images import decode_image
from tests.recognition.image_helpers import CAPS, encoded


def box(kind: bytes, payload: bytes) -> bytes:
    return (8 + len(payload)).to_bytes(4, "big") + kind + payload


def mp4_video(media_bytes: int = 200_000) -> bytes:
    """An MP4's top-level layout, as a motion photo appends it: ftyp, moov, mdat."""
    media = np.random.default_rng(0).integers(0, 256, media_bytes, dtype=np.uint8).tobytes()
    return box(b"ftyp", b"mp42\x00\x00\x00\x00isommp42") + box(b"moov", b"\x00" * 64) + box(b"mdat", media)


def photo() -> Image.Image:
    return Image.new("RGB", (64, 48), (200, 30, 40))


def test_a_motion_photo_is_decoded_as_its_picture():
    still = encoded("JPEG", photo())
    decoded = decode_image(still + mp4_video(), **CAPS)
    assert decoded.size == (64, 48)
    assert np.array_equal(np.asarray(decoded), np.asarray(decode_image(still, **CAPS)))


def test_a_video_with_a_box_cut_short_is_refused_as_a_motion_photo_this_server_cannot_read():
    with pytest.raises(InvalidImage, match="motion photo"):
        decode_image(encoded("JPEG", photo()) + mp4_video()[:-10], **CAPS)


def test_a_motion_photo_in_another_layout_is_refused_saying_so():
    samsung_like = b"MotionPhoto_Data" + mp4_video() + b"\x00" * 24 + b"SEFT"
    with pytest.raises(InvalidImage, match="send the photo alone"):
        decode_image(encoded("JPEG", photo()) + samsung_like, **CAPS)


def test_a_video_does_not_excuse_an_archive_hidden_in_it():
    archive = b"PK\x03\x04\x14\x00" + b"\x00" * 40
    video = mp4_video(media_bytes=0)[:-8] + box(b"mdat", b"\x00" * 5000 + archive)
    with pytest.raises(InvalidImage, match="hides other content"):
        decode_image(encoded("JPEG", photo()) + video, **CAPS)


@pytest.mark.parametrize(
    "video",
    [
        # a box that runs "to the end of the file" would let any bytes follow unexamined
        box(b"ftyp", b"mp42\x00\x00\x00\x00isom") + box(b"moov", b"") + b"\x00\x00\x00\x00mdat" + b"\x01" * 9000,
        box(b"ftyp", b"zzzz\x00\x00\x00\x00") + box(b"moov", b"") + box(b"mdat", b"\x01" * 9000),
        box(b"ftyp", b"mp42\x00\x00\x00\x00") + box(b"mdat", b"\x01" * 9000),
        box(b"ftyp", b"mp42\x00\x00\x00\x00") + box(b"moov", b"") + box(b"MZ\x90\x00", b"\x01" * 9000),
    ],
    ids=["box to the end of the file", "brand of no video", "no moov", "box of no video"],
)
def test_bytes_dressed_as_a_video_are_refused(video):
    with pytest.raises(InvalidImage, match="motion photo"):
        decode_image(encoded("JPEG", photo()) + video, **CAPS)


def test_a_heic_photo_is_refused_by_name_with_what_to_send():
    heic_start = box(b"ftyp", b"heic\x00\x00\x00\x00mif1heic") + box(b"meta", b"\x00" * 100)
    with pytest.raises(InvalidImage, match="HEIC photo, which is not supported: send it as JPEG"):
        decode_image(heic_start, **CAPS)


@pytest.mark.skipif(not features.check("avif"), reason="this Pillow cannot write AVIF")
def test_an_avif_photo_is_refused_by_name():
    buffer = io.BytesIO()
    photo().save(buffer, format="AVIF")
    with pytest.raises(InvalidImage, match="AVIF photo"):
        decode_image(buffer.getvalue(), **CAPS)
