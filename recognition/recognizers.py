"""Recognizers: a label set plus a small linear head on the backbone's embedding.

A head is stored as an `.npz` (weight, bias, labels, backbone version) beside a `metrics.json`,
written atomically. Heads are tiny (10x1280 floats for `type`), so they ship in the repository
and a fresh install needs no training.
"""

from __future__ import annotations

import json
import os
import tempfile
import threading
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from recognition.colour import colour_features
from recognition.errors import ModelNotReady, UnknownRecognizer

BUILTIN_ARTIFACTS_DIR = Path(__file__).resolve().parent / "artifacts"
HEAD_FILE = "head.npz"
METRICS_FILE = "metrics.json"
# What a head reads: the backbone embedding alone, or the embedding joined with colour features.
FEATURES_EMBEDDING = "embedding"
FEATURES_EMBEDDING_COLOUR = "embedding+colour"


@dataclass(frozen=True)
class Prediction:
    """One candidate tag and its softmax score in [0, 1]."""

    tag: str
    score: float


@dataclass(frozen=True)
class Head:
    """A linear classifier over L2-normalised embeddings."""

    name: str
    labels: tuple[str, ...]
    weight: NDArray[np.float32]  # (n_labels, feature_dim)
    bias: NDArray[np.float32]  # (n_labels,)
    backbone_version: str
    features: str = FEATURES_EMBEDDING

    def probabilities(self, embeddings: NDArray[np.float32]) -> NDArray[np.float32]:
        """(n, dim) embeddings to (n, n_labels) softmax probabilities."""
        logits = embeddings @ self.weight.T + self.bias
        logits -= logits.max(axis=1, keepdims=True)
        exp = np.exp(logits)
        return (exp / exp.sum(axis=1, keepdims=True)).astype(np.float32)

    def predict(self, embeddings: NDArray[np.float32]) -> list[list[Prediction]]:
        """For each embedding, every label with its score, highest first."""
        results = []
        for row in self.probabilities(embeddings):
            order = np.argsort(-row, kind="stable")
            results.append([Prediction(self.labels[i], float(row[i])) for i in order])
        return results


def head_features(
    features: str, embeddings: NDArray[np.float32], images: list[Image.Image] | None = None
) -> NDArray[np.float32]:
    """The input rows a head of kind `features` reads, from embeddings (and the images, for colour).

    For colour, the embedding and the garment's colour histogram are each L2-normalised, joined and
    normalised again, so that both count equally.
    """
    if features == FEATURES_EMBEDDING_COLOUR:
        if images is None or len(images) != len(embeddings):
            raise ValueError("colour features need the images as well as their embeddings")
        return head_inputs(features, embeddings, np.stack([colour_features(image) for image in images]))
    return head_inputs(features, embeddings, None)


def head_inputs(
    features: str, embeddings: NDArray[np.float32], colours: NDArray[np.float32] | None
) -> NDArray[np.float32]:
    """As `head_features`, from colour features already computed (`colour_features` of each image)."""
    if features == FEATURES_EMBEDDING:
        return embeddings
    if features == FEATURES_EMBEDDING_COLOUR:
        if colours is None or len(colours) != len(embeddings):
            raise ValueError("colour features need a colour row for each embedding")
        return _unit_rows(np.hstack([embeddings, _unit_rows(colours)]))
    raise ModelNotReady(f"Unknown head input kind {features!r}")


def _unit_rows(matrix: NDArray[np.float32]) -> NDArray[np.float32]:
    norms = np.linalg.norm(matrix, axis=1, keepdims=True)
    return (matrix / np.maximum(norms, 1e-12)).astype(np.float32)


def save_head(head: Head, directory: Path, metrics: dict | None = None) -> None:
    """Write the head (and its metrics) into `directory`, each file atomically."""
    directory.mkdir(parents=True, exist_ok=True)
    _atomic_write(
        directory / HEAD_FILE,
        lambda f: np.savez(
            f,
            weight=head.weight,
            bias=head.bias,
            labels=np.array(head.labels),
            name=np.array(head.name),
            backbone_version=np.array(head.backbone_version),
            features=np.array(head.features),
        ),
    )
    if metrics is not None:
        _atomic_write(
            directory / METRICS_FILE, lambda f: f.write(json.dumps(metrics, indent=2).encode())
        )


def load_head(directory: Path) -> Head:
    path = directory / HEAD_FILE
    if not path.exists():
        raise ModelNotReady(f"No trained head at {path}; run `manage.py train_recognizer`.")
    with np.load(path) as data:
        return Head(
            name=str(data["name"]),
            labels=tuple(str(label) for label in data["labels"]),
            weight=data["weight"].astype(np.float32),
            bias=data["bias"].astype(np.float32),
            backbone_version=str(data["backbone_version"]),
            features=str(data["features"]) if "features" in data else FEATURES_EMBEDDING,
        )


def load_metrics(directory: Path) -> dict:
    path = directory / METRICS_FILE
    return json.loads(path.read_text()) if path.exists() else {}


def _atomic_write(path: Path, write) -> None:
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        with os.fdopen(fd, "wb") as handle:
            write(handle)
            handle.flush()
            os.fsync(handle.fileno())
        os.chmod(tmp, 0o644)  # mkstemp makes it private; web and worker users may differ
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


_lock = threading.Lock()
_heads: dict[tuple[Path, float], Head] = {}


def available_recognizers(artifacts_dir: Path = BUILTIN_ARTIFACTS_DIR) -> list[str]:
    """Names of the recognizers that have a trained head, sorted."""
    if not artifacts_dir.exists():
        return []
    return sorted(p.name for p in artifacts_dir.iterdir() if (p / HEAD_FILE).exists())


def head_cached(directory: Path) -> Head:
    """The head stored in `directory`, loaded once per process and reloaded when its file changes."""
    path = directory / HEAD_FILE
    if not path.exists():
        raise ModelNotReady(f"No trained head at {path}.")
    key = (directory, path.stat().st_mtime)
    head = _heads.get(key)
    if head is None:
        with _lock:
            head = _heads.get(key)
            if head is None:
                head = load_head(directory)
                _heads[key] = head
    return head


def get_head(name: str, artifacts_dir: Path = BUILTIN_ARTIFACTS_DIR) -> Head:
    """The head of recognizer `name` under `artifacts_dir` (the shipped heads by default)."""
    if not (artifacts_dir / name / HEAD_FILE).exists():
        known = ", ".join(available_recognizers(artifacts_dir)) or "none"
        raise UnknownRecognizer(f"Unknown recognizer {name!r}; available: {known}.")
    return head_cached(artifacts_dir / name)
