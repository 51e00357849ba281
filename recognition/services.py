"""Django-facing wiring of the recognition core: settings in, predictions and indexes out."""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
from django.conf import settings
from numpy.typing import NDArray
from PIL import Image

from fashion_search.echo import value_echoed
from recognition.errors import UnknownRecognizer
from recognition.images import UPLOAD_MAX_ASPECT_RATIO, UPLOAD_MIN_SIDE, decode_image, model_draft_size
from recognition.index_store import IndexStore, get_index_store
from recognition.labels import LABEL_SETS
from recognition.recognizers import Head, Prediction, head_cached, head_features, head_inputs
from recognition.versions import recognizers_live_dirs

if TYPE_CHECKING:
    from pathlib import Path

    from recognition.backbone import BackboneConfig, Embedder

# Same as recognition.backbone.EMBEDDING_DIM; kept here so that importing this module (admin,
# URLs, migrations) does not import torch.
EMBEDDING_DIM = 1280

# `model=fashion` asks for every attribute recognizer at once.
FASHION = "fashion"


def backbone_get() -> Embedder:
    """The process-wide backbone configured from settings: ONNX Runtime on CPU, torch on a GPU (`auto`).

    torch is imported on first use only where it runs (or once, to export the ONNX file).
    """
    from recognition.backbone import get_backbone

    return get_backbone(_backbone_config())


def backbone_version_configured() -> str:
    """The version of the backbone that settings select, without loading it: what a live head must match."""
    from recognition.backbone import backbone_version

    return backbone_version(_backbone_config())


def _backbone_config() -> BackboneConfig:
    from recognition.backbone import BackboneConfig

    tuned = settings.BACKBONE_TUNED_WEIGHTS
    return BackboneConfig(
        device=settings.RECOGNITION_DEVICE,
        threads=settings.RECOGNITION_THREADS,
        tuned_weights=tuned if tuned.exists() else None,
        runtime=settings.RECOGNITION_RUNTIME,
        cache_dir=settings.MODEL_CACHE_DIR,
    )


def upload_decode(data: bytes) -> Image.Image:
    """Decode an untrusted upload with the caps from settings (raises InvalidImage, ImageTooLarge)."""
    return decode_image(
        data,
        max_bytes=settings.MAX_UPLOAD_BYTES,
        max_pixels=settings.MAX_IMAGE_PIXELS,
        draft_size=model_draft_size(backbone_get().input_size),
        max_aspect_ratio=UPLOAD_MAX_ASPECT_RATIO,
        min_side=UPLOAD_MIN_SIDE,
    )


def image_embed(image: Image.Image) -> NDArray[np.float32]:
    """One image to its (EMBEDDING_DIM,) L2-normalised embedding."""
    return backbone_get().embed([image])[0]


def recognizers_live() -> list[str]:
    """Names accepted by `model=`: every live recognizer, plus `fashion` for all attributes."""
    names = sorted(recognizers_live_dirs())
    return names + ([FASHION] if any(name in LABEL_SETS for name in names) else [])


def attribute_recognizers() -> list[str]:
    """The live recognizers of fashion attributes (type, pattern, colour, style), in label-set order."""
    return _attribute_names(recognizers_live_dirs())


def _attribute_names(live: dict[str, Path]) -> list[str]:
    return [name for name in LABEL_SETS if name in live]


def head_live(name: str) -> Head:
    """The live head of recognizer `name` (a live version, else the shipped head)."""
    live = recognizers_live_dirs()
    directory = live.get(name)
    if directory is None:
        # Not recognizers_live(): its `fashion` names every attribute at once in the API, not a head.
        raise UnknownRecognizer(f"Unknown recognizer {name!r}; live: {', '.join(sorted(live)) or 'none'}.")
    return head_cached(directory)


def recognizer_names_resolve(model: str) -> list[str]:
    """Expand a `model=` value into recognizer names, or raise UnknownRecognizer listing valid ones."""
    live = recognizers_live()
    if model == FASHION and FASHION in live:
        return attribute_recognizers()
    if model in live:
        return [model]
    valid = ", ".join(live) or "none trained"
    raise UnknownRecognizer(f"Unknown model {value_echoed(model)!r}; valid values: {valid}.")


def image_recognize(
    *, image: Image.Image, embedding: NDArray[np.float32], names: list[str] | None = None
) -> dict[str, list[Prediction]]:
    """Every named recognizer's candidates for one image and its embedding, scores descending.

    `names` None: every live attribute recognizer (what model=fashion means), found with the heads in
    one read of the live versions, a query that a search would otherwise make twice.
    """
    results = {}
    for name, head in _heads_live(names):
        inputs = head_features(head.features, embedding.reshape(1, -1), [image])
        results[name] = head.predict(inputs)[0]
    return results


def images_recognize(
    *, embeddings: NDArray[np.float32], colours: NDArray[np.float32], names: list[str]
) -> list[dict[str, list[Prediction]]]:
    """`image_recognize` for a batch, from each photo's embedding and `colour_features` row: one product per head."""
    results: list[dict[str, list[Prediction]]] = [{} for _ in range(len(embeddings))]
    for name, head in _heads_live(names):
        for photo_results, candidates in zip(
            results, head.predict(head_inputs(head.features, embeddings, colours)), strict=True
        ):
            photo_results[name] = candidates
    return results


def heads_on_another_backbone() -> list[str]:
    """Live recognizers whose head was trained on another backbone than the running one.

    Such a head still answers, with meaningless scores, e.g. after `train_recognizer --fine-tune`
    replaced the backbone and the other heads were not trained again; the web process warns at start,
    once its backbone is loaded, whose version is then known without hashing the weights again.
    """
    running = backbone_get().version
    return [
        f"{name} (trained on {head.backbone_version}, running {running})"
        for name, head in _heads_live(sorted(recognizers_live_dirs()))
        if head.backbone_version != running
    ]


def _heads_live(names: list[str] | None) -> list[tuple[str, Head]]:
    directories = recognizers_live_dirs()
    if names is None:
        names = _attribute_names(directories)
    unknown = [name for name in names if name not in directories]
    if unknown:
        raise UnknownRecognizer(f"Unknown recognizer {unknown[0]!r}.")
    return [(name, head_cached(directories[name])) for name in names]


def index_store_get() -> IndexStore:
    return get_index_store(settings.INDEX_DIR, EMBEDDING_DIM, mapped=settings.INDEX_MEMORY_MAP)
