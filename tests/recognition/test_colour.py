"""Colour features: the fast garment mask against the straightforward pairwise one (the oracle), on real photos."""

from __future__ import annotations

import numpy as np
import pytest
from PIL import Image

from recognition import colour
from recognition.colour import BACKGROUND_DISTANCE, colour_features, garment_mask
from tests.conftest import demo_photos


def reference_garment_mask(rgb: np.ndarray) -> np.ndarray:
    """The mask as first written (and as the shipped colour head was trained): every pixel minus every sample."""
    height, width, _ = rgb.shape
    pixels = rgb.astype(np.float32)
    border = np.concatenate(
        [
            pixels[: colour.BORDER_PX].reshape(-1, 3),
            pixels[-colour.BORDER_PX :].reshape(-1, 3),
            pixels[:, : colour.BORDER_PX].reshape(-1, 3),
            pixels[:, -colour.BORDER_PX :].reshape(-1, 3),
        ]
    )
    samples = border[:: max(1, len(border) // colour.BORDER_SAMPLES)][: colour.BORDER_SAMPLES]
    nearest = np.sqrt(((pixels.reshape(-1, 1, 3) - samples[None, :, :]) ** 2).sum(axis=2)).min(axis=1)
    mask = (nearest > BACKGROUND_DISTANCE).reshape(height, width)
    if mask.mean() < colour.MIN_MASK_SHARE:
        mask = np.zeros((height, width), dtype=bool)
        mask[height // 4 : 3 * height // 4, width // 4 : 3 * width // 4] = True
    return mask


def _analysis_pixels(image: Image.Image) -> np.ndarray:
    small = image.convert("RGB").resize((colour.ANALYSIS_SIZE, colour.ANALYSIS_SIZE), Image.Resampling.BILINEAR)
    return np.asarray(small, dtype=np.uint8)


@pytest.mark.parametrize("path", demo_photos(per_type=1), ids=lambda p: p.parent.name)
def test_garment_mask_is_identical_to_the_pairwise_reference_on_demo_photos(path):
    # given: a real demo photo at the analysis size
    with Image.open(path) as image:
        rgb = _analysis_pixels(image)

    # when / then: the fast mask is the reference mask, pixel for pixel
    expected = reference_garment_mask(rgb)
    assert np.array_equal(garment_mask(rgb), expected)
    assert 0 < expected.sum() < expected.size  # a real garment region, not a degenerate case


def test_colour_features_are_bit_identical_to_those_of_the_reference_mask(monkeypatch):
    # given: two demo photos of every type and their features with the fast mask
    images = []
    for path in demo_photos(per_type=2):
        with Image.open(path) as image:
            images.append(image.convert("RGB"))
    fast = [colour_features(image) for image in images]

    # when: the same features are computed with the reference mask swapped in
    monkeypatch.setattr(colour, "garment_mask", reference_garment_mask)
    expected = [colour_features(image) for image in images]

    # then: every vector is the same, bit for bit, so the shipped colour head sees what it was trained on
    for got, want in zip(fast, expected, strict=True):
        assert got.shape == (colour.FEATURE_DIM,)
        assert np.array_equal(got, want)


def test_a_pixel_exactly_at_the_background_distance_stays_background():
    # given: a grey frame around pixels 40 (exactly the threshold) and 41 RGB steps from it, and a large
    # garment block so the mask is not replaced by the central fallback
    rgb = np.full((96, 96, 3), 100, dtype=np.uint8)
    rgb[20:80, 20:80] = (200, 30, 30)
    rgb[10, 10] = (100, 100, 140)  # distance 40: not different enough
    rgb[10, 11] = (100, 100, 141)  # distance 41: garment
    rgb[10, 12] = (124, 132, 100)  # sqrt(24^2 + 32^2) = 40: not different enough

    # when
    mask = garment_mask(rgb)

    # then: the threshold is strict, exactly as in the reference
    assert not mask[10, 10] and mask[10, 11] and not mask[10, 12]
    assert np.array_equal(mask, reference_garment_mask(rgb))


def test_extreme_colours_do_not_lose_precision():
    # given: black and white pixels, whose products are the largest the expansion can meet
    rng = np.random.default_rng(0)
    rgb = rng.choice(np.array([0, 1, 254, 255], dtype=np.uint8), size=(96, 96, 3))

    # then
    assert np.array_equal(garment_mask(rgb), reference_garment_mask(rgb))
