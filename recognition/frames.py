"""A photo inside a plain frame (a screenshot's margins, a picture pasted on a white page) is read
without the frame.

The colour reader takes the photo's border for the background (recognition/colour.py): with a white
frame, a white shirt on a carpet was read as the carpet's blue, and the backbone saw a small photo in
a sea of white (type right for 0.68 of 40 such photos against 0.88 without the frame). Only a frame
around a rectangle of scene is removed: a garment cut out on white (a product shot) has no straight,
textured edges against its background and keeps it, as the catalog's product photos do.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

ANALYSIS_SIDE = 256  # the frame is found on a copy at most this size: a few milliseconds
FRAME_TOLERANCE = 24  # largest channel difference from the frame's colour that still counts as frame
FRAME_UNIFORM_SHARE = 0.97  # of the outermost ring of pixels that must be the frame's colour
CONTENT_LINE_SHARE = 0.02  # a row or column with more content than this is inside the picture
EDGE_CONTENT_SHARE = 0.6  # of each edge of the picture that must differ from the frame: a rectangle's
MIN_FRAME_SHARE = 0.04  # frames thinner than this share of the side (on every side) are left alone
MIN_PICTURE_SIDE = 32  # pixels: a smaller picture is left in its frame (the upload's own least side)
EDGE_BAND = 2  # pixels, on the analysis copy, dropped inside the picture's edge (resampling blur)
OUTER_LINE_SAMPLES = 128  # pixels of each outer line the first look reads (every photo gets that look)
EDGE_TEXTURE_STD = 3.0  # least spread of the values along a photo's edge; a flat shape's is about 0-1 (JPEG noise)


def frame_removed(image: Image.Image) -> Image.Image:
    """`image` without a plain frame around a rectangular picture, or `image` itself (also when the
    picture is under MIN_PICTURE_SIDE: a thumbnail on a page is no photo to read)."""
    box = picture_box(image)
    if box is None or min(box[2] - box[0], box[3] - box[1]) < MIN_PICTURE_SIDE:
        return image
    return image.crop(box)


def picture_box(image: Image.Image) -> tuple[int, int, int, int] | None:
    """The (left, top, right, bottom) of the picture inside a plain frame, in `image`'s pixels, or None.

    The frame may be on some sides only (a letterboxed picture: bars above and below).
    """
    if min(image.size) < 16 or _frame_colour(_outer_lines(image)) is None:  # most photos: a few lines read
        return None
    scale = min(1.0, ANALYSIS_SIDE / max(image.size))  # resized straight, not copied whole first
    size = (max(1, round(image.width * scale)), max(1, round(image.height * scale)))
    rgb = image if image.mode == "RGB" else image.convert("RGB")
    pixels = np.asarray(rgb.resize(size, Image.Resampling.BICUBIC, reducing_gap=2.0), dtype=np.int16)  # as thumbnail()
    height, width, _ = pixels.shape
    sides = {"top": pixels[0], "bottom": pixels[-1], "left": pixels[:, 0], "right": pixels[:, -1]}
    colour = _frame_colour(list(sides.values()))
    if colour is None:
        return None
    framed = {name for name, line in sides.items() if _is_plain(line, colour)}
    content = np.abs(pixels - colour).max(axis=2) > FRAME_TOLERANCE
    rows = np.flatnonzero(content.mean(axis=1) > CONTENT_LINE_SHARE)
    columns = np.flatnonzero(content.mean(axis=0) > CONTENT_LINE_SHARE)
    if len(rows) == 0 or len(columns) == 0:
        return None
    top = rows[0] if "top" in framed else 0
    bottom = rows[-1] + 1 if "bottom" in framed else height
    left = columns[0] if "left" in framed else 0
    right = columns[-1] + 1 if "right" in framed else width
    frame = max(top / height, (height - bottom) / height, left / width, (width - right) / width)
    picture = (slice(top, bottom), slice(left, right))
    if frame < MIN_FRAME_SHARE or not _is_photo_rectangle(content[picture], pixels[picture], framed):
        return None
    band = {name: EDGE_BAND if name in framed else 0 for name in sides}
    scale_x, scale_y = image.width / width, image.height / height
    return (
        round((left + band["left"]) * scale_x),
        round((top + band["top"]) * scale_y),
        round((right - band["right"]) * scale_x),
        round((bottom - band["bottom"]) * scale_y),
    )


def _outer_lines(image: Image.Image) -> list[NDArray[np.int16]]:
    """The image's outermost row and column on each side, as (n, 3) arrays of at most about
    OUTER_LINE_SAMPLES pixels each: enough to tell a plain line, in a tenth of a millisecond."""
    width, height = image.size
    boxes = [(0, 0, width, 1), (0, height - 1, width, height), (0, 0, 1, height), (width - 1, 0, width, height)]
    lines = [np.asarray(image.crop(box).convert("RGB"), dtype=np.int16).reshape(-1, 3) for box in boxes]
    return [line[:: max(1, len(line) // OUTER_LINE_SAMPLES)] for line in lines]


def _frame_colour(lines: list[NDArray[np.int16]]) -> NDArray[np.float64] | None:
    """The colour of the plain outer lines, if at least two opposite ones are plain and of one colour."""
    # Each line's colour from a few of its pixels: a median over every pixel cost most of the time
    # this takes on an ordinary photo, which is nearly every photo.
    plain = [line for line in lines if _is_plain(line, np.median(line[:: max(1, len(line) // 9)], axis=0))]
    if len(plain) < 2:
        return None
    colour = np.median(np.concatenate(plain), axis=0)
    return colour if sum(_is_plain(line, colour) for line in lines) >= 2 else None


def _is_plain(line: NDArray[np.int16], colour: NDArray[np.float64]) -> bool:
    return bool((np.abs(line - colour).max(axis=1) <= FRAME_TOLERANCE).mean() >= FRAME_UNIFORM_SHARE)


def _is_photo_rectangle(content: NDArray[np.bool_], pixels: NDArray[np.int16], framed: set[str]) -> bool:
    """Whether the picture's content reaches along each framed edge, as a photo's does, and varies there
    as a scene does: a flat-coloured shape on a plain ground (a product cut out on white) is no photo."""
    outer, inner = EDGE_BAND, 3 * EDGE_BAND  # the texture is read past the edge's resampling blur
    if min(content.shape) <= 2 * inner + 2:  # too small to have an edge and an inside
        return False
    bands = {
        "top": ((slice(None, outer), slice(None)), (slice(outer, inner), slice(inner, -inner))),
        "bottom": ((slice(-outer, None), slice(None)), (slice(-inner, -outer), slice(inner, -inner))),
        "left": ((slice(None), slice(None, outer)), (slice(inner, -inner), slice(outer, inner))),
        "right": ((slice(None), slice(-outer, None)), (slice(inner, -inner), slice(-inner, -outer))),
    }
    return all(
        content[bands[name][0]].mean() >= EDGE_CONTENT_SHARE
        and pixels[bands[name][1]].reshape(-1, 3).std(axis=0).max() >= EDGE_TEXTURE_STD
        for name in framed
    )
