"""Colour features of the garment region, for the colour recognizer.

CNN embeddings are trained to ignore colour casts, and a linear probe on them named the colour of only
about half of the validation photos. So colour is read from the pixels instead: the background is
estimated from the photo's border (these photos lie on beds, floors and hangers), the pixels that
differ from it form the garment mask, and a hue/saturation/value histogram of the mask is the feature
vector that a small learned head maps to the palette.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import NDArray
from PIL import Image

FEATURE_NAME = "colour-histogram-v1"
ANALYSIS_SIZE = 96  # pixels per side: enough for colour, and a few milliseconds per photo
BORDER_PX = 6
BORDER_SAMPLES = 256
# RGB distance (0-441) beyond which a pixel counts as different from every background sample.
BACKGROUND_DISTANCE = 40.0
MIN_MASK_SHARE = 0.08
HUE_BINS, SATURATION_BINS, VALUE_BINS = 12, 3, 4
FEATURE_DIM = HUE_BINS * SATURATION_BINS * VALUE_BINS + 6


def garment_mask(rgb: NDArray[np.uint8]) -> NDArray[np.bool_]:
    """True where a pixel differs from the border's colours; the central region when that finds too little."""
    height, width, _ = rgb.shape
    pixels = rgb.astype(np.float32)
    border = np.concatenate(
        [
            pixels[:BORDER_PX].reshape(-1, 3),
            pixels[-BORDER_PX:].reshape(-1, 3),
            pixels[:, :BORDER_PX].reshape(-1, 3),
            pixels[:, -BORDER_PX:].reshape(-1, 3),
        ]
    )
    step = max(1, len(border) // BORDER_SAMPLES)
    samples = border[::step][:BORDER_SAMPLES]
    flat = pixels.reshape(-1, 1, 3)
    nearest = np.sqrt(((flat - samples[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    mask = (nearest > BACKGROUND_DISTANCE).reshape(height, width)
    if mask.mean() < MIN_MASK_SHARE:
        mask = np.zeros((height, width), dtype=bool)
        mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    return mask


def colour_features(image: Image.Image) -> NDArray[np.float32]:
    """(FEATURE_DIM,) feature vector: square-rooted HSV histogram of the garment, then mean HSV and RGB."""
    small = image.convert("RGB").resize((ANALYSIS_SIZE, ANALYSIS_SIZE), Image.Resampling.BILINEAR)
    rgb = np.asarray(small, dtype=np.uint8)
    hsv = np.asarray(small.convert("HSV"), dtype=np.float32) / 255.0
    mask = garment_mask(rgb)
    garment = hsv[mask]
    hue = np.minimum((garment[:, 0] * HUE_BINS).astype(int), HUE_BINS - 1)
    saturation = np.minimum((garment[:, 1] * SATURATION_BINS).astype(int), SATURATION_BINS - 1)
    value = np.minimum((garment[:, 2] * VALUE_BINS).astype(int), VALUE_BINS - 1)
    bins = (hue * SATURATION_BINS + saturation) * VALUE_BINS + value
    histogram = np.bincount(bins, minlength=HUE_BINS * SATURATION_BINS * VALUE_BINS).astype(np.float32)
    histogram = np.sqrt(histogram / max(len(garment), 1))
    means = np.concatenate([garment.mean(axis=0), rgb[mask].mean(axis=0) / 255.0]).astype(np.float32)
    return np.concatenate([histogram, means]).astype(np.float32)
