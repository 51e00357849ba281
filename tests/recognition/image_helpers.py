"""Image files made in memory for the image tests: each format, and bombs that cost no memory to make."""

from __future__ import annotations

import io
import struct
import zlib

from PIL import Image

CAPS = {"max_bytes": 2_000_000, "max_pixels": 4_000_000}


def encoded(fmt: str, image: Image.Image | None = None, **options) -> bytes:
    buffer = io.BytesIO()
    (image or Image.new("RGB", (64, 48), "red")).save(buffer, format=fmt, **options)
    return buffer.getvalue()


def png_bomb(width: int, height: int) -> bytes:
    """A 1-bit black PNG of width x height, written row by row so that making it costs no memory."""

    def chunk(kind: bytes, payload: bytes) -> bytes:
        return struct.pack(">I", len(payload)) + kind + payload + struct.pack(">I", zlib.crc32(kind + payload))

    compressor = zlib.compressobj(9)
    row = b"\x00" * (1 + (width + 7) // 8)  # filter byte, then the packed bits
    idat = b"".join(compressor.compress(row) for _ in range(height)) + compressor.flush()
    ihdr = struct.pack(">IIBBBBB", width, height, 1, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + chunk(b"IDAT", idat) + chunk(b"IEND", b"")
