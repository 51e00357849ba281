"""Safe image decoding: content sniffing, size caps, bomb refusal, EXIF orientation, RGB.

Everything that reaches a model goes through `decode_image`, so a hostile upload is refused here,
before any pixel is decoded.
"""

from __future__ import annotations

import io
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from recognition.errors import ImageTooLarge, InvalidImage

# Magic bytes of the formats we accept, judged by content, never by file name.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
# File name suffixes read from folders of trusted images (imports, training sets).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")


def sniff_format(data: bytes) -> str:
    """Return the image format named by the leading bytes, or raise InvalidImage."""
    if not data:
        raise InvalidImage("The file is empty.")
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    raise InvalidImage("Not a supported image: upload a JPEG, PNG, WebP or GIF photo.")


def decode_image(
    data: bytes, *, max_bytes: int, max_pixels: int, draft_size: int | None = None
) -> Image.Image:
    """Decode untrusted bytes into an upright RGB image.

    The byte size and the pixel count (read from the header, before decoding) are checked first,
    so a decompression bomb costs no memory. `draft_size` lets JPEG decode at a reduced scale
    (at least that many pixels on the shorter side), which is much faster for large photos.
    """
    if len(data) > max_bytes:
        raise ImageTooLarge(f"The file is {len(data)} bytes; the limit is {max_bytes} bytes.")
    expected = sniff_format(data)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"The image is {width}x{height} pixels; the limit is {max_pixels} pixels."
                )
            if image.format != expected:
                raise InvalidImage("The file's content does not match an image format.")
            if image.format == "JPEG" and draft_size:
                image.draft("RGB", (draft_size, draft_size))
            image.seek(0)  # the first frame of an animated GIF or WebP
            image.load()
            image = ImageOps.exif_transpose(image)
            return image.convert("RGB")
    except (ImageTooLarge, InvalidImage):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own bomb guard, for sizes past its global limit: refused before decoding too.
        raise ImageTooLarge(f"The image has too many pixels; the limit is {max_pixels} pixels.") from None
    except UnidentifiedImageError as exc:
        raise InvalidImage(f"The image could not be read: {exc}") from None
    except (OSError, SyntaxError, ValueError, EOFError) as exc:
        # Pillow reports truncated and corrupt streams as OSError or SyntaxError.
        raise InvalidImage(f"The image is corrupt or truncated: {exc}") from None


def to_model_input(image: Image.Image, *, size: int) -> NDArray[np.float32]:
    """Resize the shorter side to `size`, centre-crop a square, scale to [-1, 1], CHW float32."""
    image = ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR)
    array = np.asarray(image, dtype=np.float32)
    array = (array - 127.5) / 127.5
    return np.ascontiguousarray(array.transpose(2, 0, 1))
