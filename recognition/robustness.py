"""How the recognizers' answers hold up when the same photo reaches them changed: framed, letterboxed,
darker, brighter, under warm light, mirrored, compressed hard. Each variant is sent through the upload
path (JPEG bytes, `upload_decode`), as a shopper's photo is, and compared with the photo as it is.
"""

from __future__ import annotations

import io
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from PIL import Image, ImageEnhance, ImageOps

from recognition.images import IMAGE_SUFFIXES
from recognition.services import attribute_recognizers, image_embed, image_recognize, upload_decode

UPLOAD_QUALITY = 90


def _warm_light(image: Image.Image) -> Image.Image:
    red, green, blue = image.split()
    return Image.merge("RGB", (red.point(lambda v: min(255, v * 1.15)), green, blue.point(lambda v: v * 0.8)))


VARIANTS: dict[str, tuple[Callable[[Image.Image], Image.Image], int]] = {
    # name: (change, JPEG quality it is sent at)
    "as it is": (lambda image: image, UPLOAD_QUALITY),
    "in a wide white frame": (lambda image: ImageOps.expand(image, border=image.width // 2, fill="white"), 90),
    "in a thin white frame": (lambda image: ImageOps.expand(image, border=image.width // 10, fill="white"), 90),
    "letterboxed in black": (lambda image: ImageOps.expand(image, border=(0, image.height // 3), fill="black"), 90),
    "darker (x0.5)": (lambda image: ImageEnhance.Brightness(image).enhance(0.5), 90),
    "brighter (x1.4)": (lambda image: ImageEnhance.Brightness(image).enhance(1.4), 90),
    "warm light": (_warm_light, UPLOAD_QUALITY),
    "mirrored": (ImageOps.mirror, UPLOAD_QUALITY),
    "JPEG quality 15": (lambda image: image, 15),
}


@dataclass
class VariantResult:
    photos: int = 0
    type_right: int = 0
    same_answer: dict[str, int] = field(default_factory=dict)  # attribute -> photos answered as unchanged


def photos_sample(root: Path, *, per_label: int, seed: int = 1) -> list[tuple[Path, str]]:
    """`per_label` photos of each label folder under `root`, drawn with a fixed seed: (path, label)."""
    chosen: list[tuple[Path, str]] = []
    rng = random.Random(seed)
    for folder in sorted(path for path in root.iterdir() if path.is_dir()):
        photos = sorted(path for path in folder.iterdir() if path.suffix.lower() in IMAGE_SUFFIXES)
        chosen += [(path, folder.name) for path in rng.sample(photos, min(per_label, len(photos)))]
    return chosen


def robustness_evaluate(
    photos: list[tuple[Path, str]], *, progress: Callable[[int], None] | None = None
) -> dict[str, VariantResult]:
    """Per variant: how often type is right, and how often each attribute keeps the unchanged photo's answer."""
    names = attribute_recognizers()
    results = {name: VariantResult() for name in VARIANTS}
    for path, label in photos:
        image = ImageOps.exif_transpose(Image.open(path)).convert("RGB")
        answers = {name: _answers(change(image), quality, names) for name, (change, quality) in VARIANTS.items()}
        for name, answer in answers.items():
            result = results[name]
            result.photos += 1
            result.type_right += answer.get("type") == label
            for attribute, value in answer.items():
                same = value == answers["as it is"].get(attribute)
                result.same_answer[attribute] = result.same_answer.get(attribute, 0) + same
        if progress:
            progress(1)
    return results


def _answers(image: Image.Image, quality: int, names: list[str]) -> dict[str, str]:
    buffer = io.BytesIO()
    image.save(buffer, "JPEG", quality=quality)
    decoded = upload_decode(buffer.getvalue())
    predictions = image_recognize(image=decoded, embedding=image_embed(decoded), names=names)
    return {attribute: ranked[0].tag for attribute, ranked in predictions.items() if ranked}


def robustness_report(results: dict[str, VariantResult]) -> str:
    """A markdown table: type top-1 per variant, and the share of answers unchanged per attribute."""
    attributes = sorted({attribute for result in results.values() for attribute in result.same_answer})
    lines = [
        "| photo sent | photos | type top-1 | " + " | ".join(f"{a} unchanged" for a in attributes) + " |",
        "| --- | ---: | ---: | " + " | ".join("---:" for _ in attributes) + " |",
    ]
    for name, result in results.items():
        shares = " | ".join(f"{result.same_answer.get(a, 0) / max(result.photos, 1):.2f}" for a in attributes)
        lines.append(f"| {name} | {result.photos} | {result.type_right / max(result.photos, 1):.3f} | {shares} |")
    return "\n".join(lines)
