"""The backbone on ONNX Runtime: the torch model exported once per version, then run without torch.

The export holds the whole embedding (extract_features, global average pool, L2 normalisation) with
a dynamic batch axis, and its preprocessing in the file's metadata. It is written on first use into
a cache directory, named by the backbone version, so a new fine-tuned weights file gets a new export.
Processes that start together (gunicorn workers, Celery children) take a file lock: one exports, the
others wait and then load its file. A file is written to a temporary name, checked against eager
torch on a fixed input, and only then renamed into place, so no process ever loads a half-written
or wrong export.

Why ONNX Runtime: on the 2-core development CPU it embeds one photo several times faster than eager
PyTorch (bench/README.md, "Embedding throughput"), and a process that only runs it does not import
torch at all.
"""

from __future__ import annotations

import dataclasses
import fcntl
import logging
import os
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import onnxruntime as ort
from numpy.typing import NDArray
from PIL import Image

from recognition.backbone import (
    EMBEDDING_DIM,
    INPUT_SIZES,
    Backbone,
    BackboneConfig,
    backbone_version,
    cuda_available,
)
from recognition.errors import ModelNotReady
from recognition.images import to_model_input

logger = logging.getLogger(__name__)

# Bump when the exported graph changes (inputs, outputs, opset): old files are then left unused.
EXPORT_FORMAT = "emb1"
OPSET = 17
LOCK_FILE = ".export.lock"
# An export must agree with eager torch at least this well before it is published (cosine similarity).
MIN_EXPORT_COSINE = 0.999
# What the exported model expects; stored in the file so that prediction reads it from there.
SCALING = "(pixel - 127.5) / 127.5"
RESIZE = "shorter side to input_size (bilinear), centre crop input_size x input_size, RGB, CHW"


def export_path(cache_dir: Path, version: str) -> Path:
    """Where the export of backbone `version` lives (one file per version and export format)."""
    return cache_dir / f"{version.replace(':', '-')}.{EXPORT_FORMAT}.onnx"


def export_ensure(config: BackboneConfig, cache_dir: Path) -> Path:
    """The export for `config`, written first if missing; safe to call from many processes at once."""
    path = export_path(cache_dir, backbone_version(config))
    if path.exists():
        return path
    cache_dir.mkdir(parents=True, exist_ok=True)
    with open(cache_dir / LOCK_FILE, "w") as lock_handle:
        # Another process may be exporting the same version: wait for it, then find its file.
        fcntl.flock(lock_handle, fcntl.LOCK_EX)
        try:
            if not path.exists():
                onnx_export(config, path)
        finally:
            fcntl.flock(lock_handle, fcntl.LOCK_UN)
    return path


def onnx_export(config: BackboneConfig, path: Path) -> None:
    """Export the torch backbone of `config` to `path` atomically, after checking it against torch.

    Takes a few seconds and imports torch; call it under the cache lock (`export_ensure`).
    """
    started = time.perf_counter()
    torch_backbone = Backbone(dataclasses.replace(config, device="cpu", runtime="torch", threads=0))
    size = torch_backbone.input_size
    module = embedding_module(torch_backbone.model)
    example = np.random.default_rng(0).uniform(-1, 1, (2, 3, size, size)).astype(np.float32)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    try:
        onnx_write(module, example, Path(tmp))
        _metadata_write(Path(tmp), version=torch_backbone.version, input_size=size)
        cosine = _agreement(Path(tmp), example, torch_backbone.embed_batch(example))
        if cosine < MIN_EXPORT_COSINE:
            raise ModelNotReady(f"ONNX export of {torch_backbone.version} disagrees with torch (cosine {cosine:.5f}).")
        os.chmod(tmp, 0o644)  # mkstemp makes it private; web and worker users may differ
        os.replace(tmp, path)
    finally:
        Path(tmp).unlink(missing_ok=True)
    logger.info(
        "exported backbone %s to %s in %.1fs (cosine to torch %.6f)",
        torch_backbone.version, path.name, time.perf_counter() - started, cosine,
    )


def onnx_write(module: object, example: NDArray[np.float32], path: Path) -> None:
    """Export `module` for inputs shaped as `example` but for the batch axis, which stays dynamic."""
    import torch

    with warnings.catch_warnings():
        # The exporter reports each shape it could not constant-fold; none matters for inference.
        warnings.simplefilter("ignore")
        torch.onnx.export(
            module,
            (torch.from_numpy(example),),
            str(path),
            input_names=["pixels"],
            output_names=["embedding"],
            dynamic_axes={"pixels": {0: "batch"}, "embedding": {0: "batch"}},
            opset_version=OPSET,
            dynamo=False,
        )


def embedding_module(model: object) -> object:
    """Wrap an EfficientNet in a module computing extract_features, average pool and L2 norm (as Backbone does)."""
    import torch

    class EmbeddingModule(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.model = model

        def forward(self, pixels: torch.Tensor) -> torch.Tensor:
            pooled = self.model.extract_features(pixels).mean(dim=(2, 3))
            return torch.nn.functional.normalize(pooled, dim=1)

    return EmbeddingModule().eval()


def _metadata_write(path: Path, *, version: str, input_size: int) -> None:
    import onnx

    model = onnx.load(str(path))
    for key, value in {
        "backbone_version": version,
        "input_size": str(input_size),
        "scaling": SCALING,
        "resize": RESIZE,
    }.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    onnx.save(model, str(path))


def _agreement(path: Path, inputs: NDArray[np.float32], reference: NDArray[np.float32]) -> float:
    session = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    exported = session.run(None, {"pixels": inputs})[0]
    return float(np.min(np.sum(exported * reference, axis=1)))


def session_options(threads: int) -> ort.SessionOptions:
    """Options for one backbone session: `threads` intra-op threads (0: one per core), no spinning."""
    options = ort.SessionOptions()
    options.graph_optimization_level = ort.GraphOptimizationLevel.ORT_ENABLE_ALL
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    # The graph is one chain of convolutions: operators never run side by side, so one inter-op
    # thread. Intra-op threads are set on purpose: web workers and a Celery worker run side by side
    # on the same cores, and each session defaulting to one thread per core would oversubscribe them
    # (RECOGNITION_THREADS in settings splits the cores instead).
    options.inter_op_num_threads = 1
    options.intra_op_num_threads = threads
    # Idle pool threads otherwise spin for a while after each call, burning the CPU that another
    # process (or the next request's decoding) could use; measured: no slower at batch 1 on 2 cores.
    options.add_session_config_entry("session.intra_op.allow_spinning", "0")
    return options


def execution_providers(device: str) -> list[str]:
    """Providers in order of preference: CUDA when asked for (or `auto` on a GPU) and installed, then CPU."""
    available = ort.get_available_providers()
    wants_gpu = device == "cuda" or (device == "auto" and cuda_available())
    if wants_gpu and "CUDAExecutionProvider" in available:
        return ["CUDAExecutionProvider", "CPUExecutionProvider"]
    if wants_gpu:
        logger.warning("no CUDA provider in this onnxruntime build; the backbone runs on the CPU")
    return ["CPUExecutionProvider"]


class OnnxBackbone:
    """The backbone on ONNX Runtime, with the same interface and version as the torch `Backbone`.

    Thread-safe: `InferenceSession.run` may be called from several threads at once.
    """

    def __init__(self, config: BackboneConfig) -> None:
        if config.cache_dir is None:
            raise ModelNotReady("The onnx runtime needs a cache directory for its export (cache_dir).")
        started = time.perf_counter()
        self.name = config.name
        self.version = backbone_version(config)
        path = export_ensure(config, config.cache_dir)
        self.session = ort.InferenceSession(
            str(path), session_options(config.threads), providers=execution_providers(config.device)
        )
        metadata = self.session.get_modelmeta().custom_metadata_map
        self.input_size = int(metadata["input_size"])
        if metadata.get("backbone_version") != self.version or self.input_size != INPUT_SIZES[config.name]:
            raise ModelNotReady(f"{path} does not hold backbone {self.version}; delete it to export again.")
        self.device = self.session.get_providers()[0]
        logger.info(
            "loaded backbone %s (onnx, %s, %s threads) in %.2fs",
            self.version, self.device, config.threads or "default", time.perf_counter() - started,
        )

    def preprocess(self, image: Image.Image) -> NDArray[np.float32]:
        """One RGB image to the model's input: (3, size, size) float32 in [-1, 1]."""
        return to_model_input(image, size=self.input_size)

    def embed_batch(self, batch: NDArray[np.float32]) -> NDArray[np.float32]:
        """(n, 3, size, size) inputs to (n, EMBEDDING_DIM) L2-normalised float32 embeddings."""
        if len(batch) == 0:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self.session.run(None, {"pixels": np.ascontiguousarray(batch, dtype=np.float32)})[0]

    def embed(self, images: list[Image.Image]) -> NDArray[np.float32]:
        """RGB images to (n, EMBEDDING_DIM) L2-normalised float32 embeddings."""
        if not images:
            return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
        return self.embed_batch(np.stack([self.preprocess(image) for image in images]))
