"""Where an image's data ends and which of its bytes are metadata, read from the container structure.

`decode_image` uses this to refuse polyglots: files that are a valid image *and* something else, an
HTML page, a script, a ZIP or a PDF, hidden in a comment or appended after the image's end marker.
The walk reads segment lengths only, never pixels, so it costs no memory; a 10 MB photo takes a few ms.
A file crafted from millions of tiny segments would keep a Python loop busy for seconds, so each walk
has a step budget proportional to the file size (`BYTES_PER_STEP`).
"""

from __future__ import annotations

import re
import struct
from dataclasses import dataclass

from recognition.errors import InvalidImage

_TRUNCATED = "The image is truncated: its data ends before the format's end marker."

# Real files use far larger pieces: JPEG segments and PNG chunks of kilobytes, GIF sub-blocks of 255
# bytes, JPEG byte stuffing about once in 256 bytes. A crafted 10 MB file of 2-byte pieces is refused
# after ~170k steps (~0.3 s) instead of walking 5 million (~8 s).
BYTES_PER_STEP = 64
BASE_STEPS = 10_000


class StepBudget:
    """Counts the steps of the walks over one file; raises InvalidImage once they are spent."""

    def __init__(self, data: bytes) -> None:
        self.left = BASE_STEPS + len(data) // BYTES_PER_STEP

    def take(self) -> None:
        self.left -= 1
        if self.left < 0:
            raise InvalidImage("The image is made of implausibly many tiny segments.")


@dataclass(frozen=True)
class Layout:
    """`end`: offset just past the image data (past JPEG EOI, PNG IEND, the GIF trailer or the RIFF size).

    `metadata`: the bytes of segments that can carry text (comments, EXIF, XMP, PNG text chunks, GIF
    extensions, WebP metadata chunks), never the compressed pixels.
    """

    end: int
    metadata: tuple[bytes, ...]


def image_layout(data: bytes, fmt: str, *, start: int = 0, budget: StepBudget | None = None) -> Layout:
    """The layout of the image of format `fmt` that begins at `start`; raises InvalidImage when malformed.

    Walks of several images in one file share one `budget`.
    """
    walkers = {"JPEG": _jpeg_layout, "PNG": _png_layout, "GIF": _gif_layout, "WEBP": _webp_layout}
    try:
        return walkers[fmt](data, start, budget or StepBudget(data))
    except (IndexError, struct.error):
        raise InvalidImage(_TRUNCATED) from None


_FILL_BYTES = re.compile(rb"\xff*")


def _jpeg_layout(data: bytes, start: int, budget: StepBudget) -> Layout:
    if data[start : start + 2] != b"\xff\xd8":
        raise InvalidImage("The JPEG data does not start with a start-of-image marker.")
    metadata: list[bytes] = []
    pos = start + 2
    while True:
        budget.take()
        if data[pos] != 0xFF:
            raise InvalidImage("The JPEG is corrupt: a segment does not start with a marker.")
        pos = _FILL_BYTES.match(data, pos).end()  # any number may precede a marker; a loop took 2.6 s for 10 MB
        marker = data[pos]
        pos += 1
        if marker == 0xD9:  # EOI
            return Layout(end=pos, metadata=tuple(metadata))
        if marker == 0x01 or 0xD0 <= marker <= 0xD7:  # TEM, RSTn: no length
            continue
        (length,) = struct.unpack_from(">H", data, pos)
        if length < 2 or pos + length > len(data):
            raise InvalidImage(_TRUNCATED)
        if marker == 0xFE or 0xE0 <= marker <= 0xEF:  # COM, APPn (EXIF, XMP, ICC, Photoshop)
            metadata.append(data[pos + 2 : pos + length])
        pos += length
        if marker == 0xDA:  # SOS: entropy-coded data follows, up to the next real marker
            pos = _skip_entropy_coded(data, pos, budget)


def _skip_entropy_coded(data: bytes, pos: int, budget: StepBudget) -> int:
    """Offset of the marker that ends a scan. Inside a scan 0xFF is followed by 0x00 (stuffing) or RSTn."""
    while True:
        budget.take()
        found = data.find(b"\xff", pos)
        if found < 0 or found + 1 >= len(data):
            raise InvalidImage(_TRUNCATED)
        following = data[found + 1]
        if following == 0x00 or 0xD0 <= following <= 0xD7:
            pos = found + 2
        elif following == 0xFF:  # fill byte before a marker
            pos = found + 1
        else:
            return found


_PNG_SIGNATURE = b"\x89PNG\r\n\x1a\n"
# Chunks that hold pixels or pixel bookkeeping; every other chunk is scanned as metadata.
_PNG_PIXEL_CHUNKS = {b"IHDR", b"PLTE", b"IDAT", b"IEND", b"tRNS", b"acTL", b"fcTL", b"fdAT"}


def _png_layout(data: bytes, start: int, budget: StepBudget) -> Layout:
    if data[start : start + 8] != _PNG_SIGNATURE:
        raise InvalidImage("The PNG signature is missing.")
    metadata: list[bytes] = []
    pos = start + 8
    while True:
        budget.take()
        length, kind = struct.unpack_from(">I4s", data, pos)
        chunk_end = pos + 12 + length
        if chunk_end > len(data):
            raise InvalidImage(_TRUNCATED)
        if kind not in _PNG_PIXEL_CHUNKS:
            metadata.append(data[pos + 8 : pos + 8 + length])
        pos = chunk_end
        if kind == b"IEND":
            return Layout(end=pos, metadata=tuple(metadata))


def _gif_layout(data: bytes, start: int, budget: StepBudget) -> Layout:
    flags = data[start + 10]
    pos = start + 13 + (3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0)  # global colour table
    metadata: list[bytes] = []
    while True:
        budget.take()
        block = data[pos]
        if block == 0x3B:  # trailer
            return Layout(end=pos + 1, metadata=tuple(metadata))
        if block == 0x21:  # extension: label, then sub-blocks (comments and application data are text-capable)
            pos, payload = _gif_sub_blocks(data, pos + 2, budget, keep=True)
            metadata.append(payload)
        elif block == 0x2C:  # image descriptor, optional local colour table, LZW code size, sub-blocks
            flags = data[pos + 9]
            pos += 10 + (3 * 2 ** ((flags & 0x07) + 1) if flags & 0x80 else 0) + 1
            pos, _ = _gif_sub_blocks(data, pos, budget, keep=False)
        else:
            raise InvalidImage("The GIF is corrupt: an unknown block follows the image data.")


def _gif_sub_blocks(data: bytes, pos: int, budget: StepBudget, *, keep: bool) -> tuple[int, bytes]:
    """Skip a chain of length-prefixed sub-blocks; returns the offset after it and, with `keep`, its payload."""
    parts: list[bytes] = []
    while True:
        budget.take()
        size = data[pos]
        if pos + 1 + size > len(data):
            raise InvalidImage(_TRUNCATED)
        if keep:
            parts.append(data[pos + 1 : pos + 1 + size])
        pos += 1 + size
        if size == 0:
            return pos, b"".join(parts)


# WebP chunks that carry metadata; VP8, VP8L, VP8X, ALPH, ANIM and ANMF carry pixels or their layout.
_WEBP_METADATA_CHUNKS = {b"EXIF", b"XMP ", b"ICCP"}


def _webp_layout(data: bytes, start: int, budget: StepBudget) -> Layout:
    (riff_size,) = struct.unpack_from("<I", data, start + 4)
    end = start + 8 + riff_size + (riff_size & 1)
    if end > len(data):
        raise InvalidImage(_TRUNCATED)
    metadata: list[bytes] = []
    pos = start + 12
    while pos + 8 <= end:
        budget.take()
        kind, length = struct.unpack_from("<4sI", data, pos)
        if kind in _WEBP_METADATA_CHUNKS:
            metadata.append(data[pos + 8 : pos + 8 + length])
        pos += 8 + length + (length & 1)
    return Layout(end=end, metadata=tuple(metadata))
