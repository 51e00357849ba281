"""Safe image decoding: content sniffing, size caps, bomb refusal, polyglot refusal, EXIF orientation, RGB.

Everything that reaches a model goes through `decode_image`, so a hostile upload is refused here,
before any pixel is decoded.

The polyglot rule: a file must be one image and nothing else. After the format's end marker (JPEG EOI,
PNG IEND, the GIF trailer, the RIFF size of a WebP) at most `MAX_TRAILING_BYTES` may follow, and
neither those bytes nor the image's metadata segments (comments, EXIF, XMP, text chunks) may hold
markup, script or the signature of another file format (ZIP, PDF, ...). A JPEG may be followed by
further complete JPEGs, checked the same way: multi-picture files (MPO, as written by Ultra HDR phone
cameras and stereo cameras) store their extra pictures so.
Photos with a long appended payload are therefore refused with a reason; real camera files carry at most
a few bytes of padding. The exception is a phone's "motion photo": a JPEG followed by a whole MP4 video,
whose structure is checked box by box (`_is_video`) and whose bytes are scanned as the rest.
"""

from __future__ import annotations

import io
import math
import re
import struct
import warnings

import numpy as np
from numpy.typing import NDArray
from PIL import Image, ImageOps, UnidentifiedImageError

from fashion_search.sizes import megabytes
from recognition.errors import ImageTooLarge, InvalidImage
from recognition.frames import frame_removed
from recognition.image_layout import StepBudget, image_layout

# Longest side over shortest side of a shopper's upload (`upload_decode`). Phone panoramas reach about
# 8:1; a file far thinner than that is no photo of a garment, and a 1x40,000,000 PNG (76 KB, within the
# pixel cap) took 4-7 s of a web process's CPU, its 40 million rows decoded and colour-analysed one by
# one. Catalog photos come from merchants, tagged by workers: a photo tagged before stays taggable.
UPLOAD_MAX_ASPECT_RATIO = 20
# Shorter side of a shopper's upload, at least: the model sees 224 px, and a 16x16 photo, blown up to
# that, was answered with confident-looking tags ("Blue 0.89") and twelve results.
UPLOAD_MIN_SIDE = 32

# Magic bytes of the formats we accept, judged by content, never by file name.
_SIGNATURES: tuple[tuple[bytes, str], ...] = (
    (b"\xff\xd8\xff", "JPEG"),
    (b"\x89PNG\r\n\x1a\n", "PNG"),
    (b"GIF87a", "GIF"),
    (b"GIF89a", "GIF"),
)
ACCEPTED_FORMATS = ("JPEG", "PNG", "WEBP", "GIF")
# Brands of the ISO-BMFF `ftyp` box that open HEIC (an iPhone camera's default) and AVIF files: refused,
# but by name, so that a shopper knows what to send instead.
_HEIF_BRANDS = {
    b"heic": "HEIC", b"heix": "HEIC", b"heim": "HEIC", b"heis": "HEIC", b"hevc": "HEIC",
    b"mif1": "HEIF", b"msf1": "HEIF", b"avif": "AVIF", b"avis": "AVIF",
}
# File name suffixes read from folders of trusted images (imports, training sets).
IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".webp", ".gif")

# Bytes tolerated after the image data (some encoders pad a few bytes; 3,409 smartphone JPEGs of the
# clothing dataset and the 100 demo photos carry none).
MAX_TRAILING_BYTES = 4 * 1024
# A motion photo (Google's format, as Pixel and other Android cameras write it by default) is a JPEG with
# an MP4 video appended: ISO-BMFF boxes back to back, `ftyp` first, to the file's last byte. Its picture
# is the photo; the video is skipped. Top-level boxes of such a video: ftyp, moov, mdat, maybe free/uuid.
_VIDEO_SIGNATURE = b"ftyp"
_VIDEO_SIGNATURE_REACH = 64  # where `ftyp` lies in other layouts (Samsung's marker comes before it)
_VIDEO_MAX_BOXES = 64
# Major brands of the MP4 (and QuickTime) files cameras write, and the top-level boxes such a file holds.
_VIDEO_BRANDS = frozenset(
    {b"isom", b"iso2", b"iso4", b"iso5", b"iso6", b"mp41", b"mp42", b"avc1", b"qt  ", b"M4V ", b"mmp4", b"3gp4",
     b"3gp5", b"3gp6", b"3g2a"}
)
_VIDEO_BOXES = frozenset({b"ftyp", b"moov", b"mdat", b"free", b"skip", b"wide", b"uuid", b"meta", b"udta", b"pnot"})
# Pictures in one JPEG file: an MPO holds 2 (Ultra HDR gain map, stereo pair) to a handful.
MAX_PICTURES = 16
# Content that a browser, an archive tool or a PDF reader would act on, matched case-insensitively. Each
# pattern needs five or more distinctive bytes, so binary metadata (EXIF maker notes, ICC profiles) of
# typical size matches one by chance far less than once in a million files.
_FOREIGN_CONTENT = re.compile(
    rb"<(?:script|html|body|svg|iframe|object|embed|!doctype|\?php)[\s>/]"
    rb"|javascript:"
    rb"|pk\x03\x04.\x00"  # ZIP local file header (also JAR, DOCX, APK)
    rb"|pk\x05\x06\x00\x00\x00\x00"  # ZIP end of central directory
    rb"|%pdf-\d"
    rb"|rar!\x1a\x07"
    rb"|7z\xbc\xaf\x27\x1c"
    rb"|\x7felf[\x01\x02]",
    re.IGNORECASE | re.DOTALL,
)
# Markup tells a document from a photo before anything else is tried (leading whitespace and a BOM allowed).
_MARKUP_START = (b"<", b"\xef\xbb\xbf<")


def sniff_format(data: bytes) -> str:
    """Return the image format named by the leading bytes, or raise InvalidImage."""
    if not data:
        raise InvalidImage("The photo is empty (0 bytes); choose another.")
    if data[:1024].lstrip().startswith(_MARKUP_START):
        raise InvalidImage("Not a supported image: the file is a markup document (HTML, SVG or XML), not a photo.")
    for signature, name in _SIGNATURES:
        if data.startswith(signature):
            return name
    if data[:4] == b"RIFF" and data[8:12] == b"WEBP":
        return "WEBP"
    if data[4:8] == b"ftyp" and data[8:12] in _HEIF_BRANDS:
        raise InvalidImage(
            f"This is a {_HEIF_BRANDS[data[8:12]]} photo, which is not supported: send it as JPEG "
            "(phones can share or export a photo as JPEG)."
        )
    raise InvalidImage("Not a supported image: upload a JPEG, PNG, WebP or GIF photo.")


def decode_image(
    data: bytes,
    *,
    max_bytes: int,
    max_pixels: int,
    draft_size: int | None = None,
    max_aspect_ratio: float | None = None,
    min_side: int | None = None,
) -> Image.Image:
    """Decode untrusted bytes into an upright RGB image (the first frame of an animated GIF or WebP),
    without a plain frame around the picture (recognition/frames.py).

    The byte size, the container structure (see the module docstring) and the pixel count (read from
    the header) are checked first, so a decompression bomb or a polyglot costs no memory. The structure
    goes before Pillow's parser, whose time grows with the number of segments, and is bounded. `draft_size`
    lets JPEG decode at a reduced scale (at least that many pixels on the shorter side), which is much
    faster for large photos. `max_aspect_ratio` bounds the longer side over the shorter, `min_side` the shorter. Raises
    ImageTooLarge or InvalidImage, each with a reason for the user.
    """
    if len(data) > max_bytes:
        # Worded as the upload handler's refusal of a larger body (fashion_search/uploads.py).
        raise ImageTooLarge(f"The photo is too large: photos can be up to {megabytes(max_bytes)} MB.")
    expected = sniff_format(data)
    refuse_polyglot(data, expected)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", Image.DecompressionBombWarning)
            # Pillow warns about each oddity of a hostile file it tolerates (corrupt EXIF, malformed MPO);
            # refusals are reported to the user instead, so these would only flood the logs.
            warnings.simplefilter("ignore", UserWarning)
            image = Image.open(io.BytesIO(data), formats=ACCEPTED_FORMATS)
            width, height = image.size
            if width * height > max_pixels:
                raise ImageTooLarge(
                    f"The image is {width}x{height} pixels ({_megapixels(width * height)}); the limit is "
                    f"{_megapixels(max_pixels)}: send a smaller copy."
                )
            if width == 0 or height == 0:
                raise InvalidImage(f"The image is {width}x{height} pixels: it has no picture.")
            if min_side and min(width, height) < min_side:
                raise InvalidImage(
                    f"The photo is {width}x{height} pixels, too small to tell a garment by: send one at least "
                    f"{min_side} pixels on each side."
                )
            if max_aspect_ratio and max(width, height) > max_aspect_ratio * min(width, height):
                raise InvalidImage(
                    f"The image is {width}x{height} pixels, more than {max_aspect_ratio:g} times as long as it "
                    "is wide; upload a photo of the garment."
                )
            if _FORMAT_FAMILY.get(image.format or "", image.format) != expected:
                raise InvalidImage("The file's content does not match an image format.")
            if image.format in ("JPEG", "MPO") and draft_size:
                image.draft("RGB", (draft_size, draft_size))
            image.seek(0)  # the first frame of an animated GIF or WebP, the primary image of an MPO
            image.load()
            image = ImageOps.exif_transpose(image)
            return frame_removed(_as_rgb(image))
    except (ImageTooLarge, InvalidImage):
        raise
    except (Image.DecompressionBombError, Image.DecompressionBombWarning):
        # Pillow's own bomb guard, for sizes past its global limit: refused before decoding too.
        raise ImageTooLarge(
            f"The image has too many pixels; the limit is {_megapixels(max_pixels)}: send a smaller copy."
        ) from None
    except UnidentifiedImageError:
        # Pillow's own text names the BytesIO object it read ("cannot identify image file <_io...>").
        raise InvalidImage(
            f"The image could not be read: its {expected} header is corrupt (a zero width or height, say)."
        ) from None
    except (OSError, SyntaxError, ValueError, EOFError, struct.error, IndexError, KeyError, TypeError) as exc:
        # Pillow reports truncated and corrupt streams as OSError or SyntaxError, and malformed headers
        # and EXIF blocks with whatever its parsers hit (struct.error, IndexError, KeyError, TypeError).
        raise InvalidImage(f"The image is corrupt or truncated: {exc}") from None


def _megapixels(pixels: int) -> str:
    """48000000 as "48 megapixels", the unit cameras and phones state."""
    return f"{pixels / 1e6:.3g} megapixels"


# Pillow opens a multi-picture JPEG as "MPO"; its content is JPEG.
_FORMAT_FAMILY = {"MPO": "JPEG"}

# What a browser shows behind a transparent pixel, and what the shopper page flattens uploads onto.
BACKGROUND = (255, 255, 255)


def _as_rgb(image: Image.Image) -> Image.Image:
    """8-bit RGB as a browser would show the image: transparency on white, 16-bit grey scaled, not clipped.

    Pillow's plain `convert("RGB")` drops the alpha channel, so a product cut-out on a transparent
    background would be embedded and colour-tagged on black; and it clips 16-bit grey values to 255,
    so a mid-grey 16-bit PNG would turn white.
    """
    if image.mode in ("I;16", "I;16L", "I;16B", "I;16N", "I"):  # "I": how older Pillows open 16-bit PNGs
        values = np.asarray(image).astype(np.int64) >> 8  # 16-bit samples to 8 bits, by the depth, not the values
        image = Image.fromarray(np.clip(values, 0, 255).astype(np.uint8), mode="L")
    if image.mode in ("RGBA", "LA", "PA", "RGBa", "La") or "transparency" in image.info:
        rgba = image.convert("RGBA")
        background = Image.new("RGBA", rgba.size, BACKGROUND + (255,))
        return Image.alpha_composite(background, rgba).convert("RGB")
    return image.convert("RGB")


def refuse_polyglot(data: bytes, fmt: str) -> None:
    """Raise InvalidImage unless `data` is one image of `fmt` and nothing else (rule in the module docstring).

    Complete JPEGs that follow a JPEG back to back (the pictures of an MPO file) count as image data.
    """
    budget = StepBudget(data)
    layout = image_layout(data, fmt, budget=budget)
    segments = list(layout.metadata)
    end = layout.end
    pictures = 1
    while fmt == "JPEG" and pictures < MAX_PICTURES and data.startswith(b"\xff\xd8", end):
        pictures += 1
        following = image_layout(data, fmt, start=end, budget=budget)
        segments += following.metadata
        end = following.end
    trailing = data[end:]
    if fmt == "JPEG" and _is_video(trailing):
        pass  # a motion photo: the picture is decoded, the video ignored (and scanned below like the rest)
    elif len(trailing) > MAX_TRAILING_BYTES and _VIDEO_SIGNATURE in trailing[:_VIDEO_SIGNATURE_REACH]:
        raise InvalidImage(
            "The file is a motion photo whose video is not in a layout this server reads; send the photo "
            "alone (phones can share or export it as a still JPEG)."
        )
    elif len(trailing) > MAX_TRAILING_BYTES:
        raise InvalidImage(
            f"The file carries {len(trailing)} bytes after the image data (at most {MAX_TRAILING_BYTES} "
            "are allowed); upload a plain photo."
        )
    if any(_FOREIGN_CONTENT.search(segment) for segment in (trailing, *segments)):
        raise InvalidImage(
            "The file hides other content (markup, script or an archive) in or after the image; "
            "upload a plain photo."
        )


def _is_video(data: bytes) -> bool:
    """Whether `data` is an MP4 video: a known video brand, top-level boxes of the kinds a video holds,
    back to back with explicit sizes to its last byte, a `moov` and an `mdat` among them."""
    if data[4:8] != _VIDEO_SIGNATURE or data[8:12] not in _VIDEO_BRANDS:
        return False
    at, kinds = 0, set()
    for _ in range(_VIDEO_MAX_BOXES):
        if at == len(data):
            return {b"moov", b"mdat"} <= kinds
        if len(data) - at < 8:
            return False
        size, kind, header = int.from_bytes(data[at : at + 4], "big"), data[at + 4 : at + 8], 8
        if size == 1:  # a 64-bit size follows the type
            if len(data) - at < 16:
                return False
            size, header = int.from_bytes(data[at + 8 : at + 16], "big"), 16
        if kind not in _VIDEO_BOXES or size < header or at + size > len(data):
            return False  # a size of 0 ("to the end of the file") would let any bytes follow unexamined
        kinds.add(kind)
        at += size
    return False


# How far JPEG scaling may go towards the model's input: to 1.5x it, no closer. Pillow's draft mode
# scales by 1/2, 1/4 or 1/8 inside the decoder, which is cheap but leaves the pixels unsmoothed; the
# antialiased resize to the input has to do the last step of at least 1.5x, as it does for the photos
# the heads were fitted on. Decoded to within that (448-px JPEGs at 1/2 straight to 224), embeddings
# moved to a median cosine of 0.973 from the same photos as stored, and to 0.994 decoded whole.
DRAFT_MARGIN = 1.5


def model_draft_size(input_size: int) -> int:
    """The `draft_size` that decodes a JPEG for a model of `input_size` px: fast, and not too close."""
    return math.ceil(input_size * DRAFT_MARGIN)


def to_model_input(image: Image.Image, *, size: int) -> NDArray[np.float32]:
    """Resize the shorter side to `size`, centre-crop a square, scale to [-1, 1], CHW float32."""
    return model_inputs_scale(model_crop(image, size=size)[None])[0]


def model_crop(image: Image.Image, *, size: int) -> NDArray[np.uint8]:
    """The first half of `to_model_input`: the centred `size` square, HWC uint8 (a quarter of the bytes)."""
    return np.asarray(ImageOps.fit(image, (size, size), method=Image.Resampling.BILINEAR), dtype=np.uint8)


def model_inputs_scale(crops: NDArray[np.uint8]) -> NDArray[np.float32]:
    """The second half of `to_model_input`, for a batch: (n, size, size, 3) uint8 to (n, 3, size, size) in [-1, 1]."""
    array = (crops.astype(np.float32) - 127.5) / 127.5
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2))
