"""Train and evaluate recognizer heads from folder-per-label image directories.

Split by stage, like torchvision's reference scripts: `load_folder_dataset`, `embed_files`,
`train_head`, `evaluate_head`. Results are flat dicts, saved beside the head as JSON.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray
from PIL import Image

from recognition.backbone import Backbone
from recognition.errors import InvalidDataset, InvalidImage
from recognition.images import IMAGE_SUFFIXES, decode_image, model_draft_size
from recognition.recognizers import FEATURES_EMBEDDING, Head, head_features
from recognition.reports import score_shown

logger = logging.getLogger(__name__)

EMBED_BATCH_IMAGES = 32
# Training files are trusted (local disk), but still capped to keep a stray panorama from eating memory.
TRAINING_MAX_BYTES = 50 * 1024 * 1024
TRAINING_MAX_PIXELS = 80_000_000


# macOS Finder's "Compress" adds a __MACOSX folder and "._name" resource forks (which keep the image's
# suffix); neither is a label nor a photo.
MACOS_METADATA_FOLDER = "__MACOSX"


def is_metadata_name(name: str) -> bool:
    """Whether a file or folder name is hidden (a "._" resource fork too) or macOS archive metadata."""
    return name.startswith(".") or name == MACOS_METADATA_FOLDER


def _is_metadata_member(filename: str) -> bool:
    """Whether a zip member, or a folder it lies in, is named as `is_metadata_name` skips on disk."""
    parts = [part for part in filename.replace("\\", "/").split("/") if part not in ("", ".")]
    return any(is_metadata_name(part) for part in parts)


@dataclass(frozen=True)
class FolderDataset:
    files: tuple[Path, ...]
    targets: NDArray[np.int64]  # index into labels, one per file
    labels: tuple[str, ...]  # sorted folder names, so indices are stable


def load_folder_dataset(root: Path, labels: Iterable[str] | None = None) -> FolderDataset:
    """Read a directory with one sub-folder per label.

    With `labels` given, their order defines the class indices (a folder not among them is an
    error); otherwise the sorted folder names do.
    """
    if not root.is_dir():
        raise InvalidDataset(f"{root} is not a directory.")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and not is_metadata_name(p.name))
    label_order = tuple(labels) if labels is not None else tuple(p.name for p in folders)
    unknown = [p.name for p in folders if p.name not in label_order]
    if unknown:
        raise InvalidDataset(f"Folders {unknown} are not labels of this recognizer: {list(label_order)}")
    files: list[Path] = []
    targets: list[int] = []
    for folder in folders:
        for path in sorted(folder.iterdir()):
            if path.suffix.lower() in IMAGE_SUFFIXES and not is_metadata_name(path.name):
                files.append(path)
                targets.append(label_order.index(folder.name))
    if not files:
        raise InvalidDataset(f"No images found under {root} (expected one sub-folder per label).")
    return FolderDataset(tuple(files), np.array(targets, dtype=np.int64), label_order)


def load_labelled_csv(root: Path, csv_path: Path, attribute: str, labels: Iterable[str]) -> FolderDataset:
    """Photos under `root` labelled by a CSV, for attributes that folders do not encode.

    The CSV names each photo by a `path` column relative to `root`, or by `type` and `file` columns
    (`root/<type>/<file>`, the layout of clothing-small). Rows whose file is not under `root` are
    ignored, so one CSV can hold the labels of several splits without mixing them.
    """
    import csv
    import io

    label_order = tuple(labels)
    if not csv_path.is_file():
        raise InvalidDataset(f"Labels file {csv_path} does not exist.")
    try:
        text = csv_path.read_text(encoding="utf-8-sig")  # Excel's "CSV UTF-8" starts with a byte order mark
    except UnicodeDecodeError as exc:
        raise InvalidDataset(f"{csv_path} is not UTF-8 text (byte {exc.start}); save it as CSV UTF-8.") from None
    reader = csv.DictReader(io.StringIO(text, newline=""))
    header = list(reader.fieldnames or ())
    columns = set(header)
    if len(columns) < len(header):  # DictReader would keep the last of two same-named columns, unsaid
        repeated = sorted({name for name in header if header.count(name) > 1})
        raise InvalidDataset(f"{csv_path} names the column {repeated[0]!r} twice in its header.")
    if attribute not in columns or not ({"path"} <= columns or {"type", "file"} <= columns):
        raise InvalidDataset(f"{csv_path} needs a {attribute!r} column and a 'path' (or 'type' and 'file') column.")
    files: list[Path] = []
    targets: list[int] = []
    lines: dict[Path, int] = {}
    for row in reader:
        line = reader.line_num
        if None in row or None in row.values():  # DictReader's marks of a row longer or shorter than the header
            raise InvalidDataset(f"{csv_path}:{line}: the row does not have the header's {len(header)} columns.")
        path = root / (row["path"] if "path" in row and row["path"] else f"{row['type']}/{row['file']}")
        if not path.is_file():
            continue
        if path in lines:  # which label would count?
            relative, first = path.relative_to(root), lines[path]
            raise InvalidDataset(f"{csv_path}:{line}: {relative} is labelled again (first on line {first}).")
        lines[path] = line
        value = row[attribute].strip()
        if value not in label_order:
            raise InvalidDataset(f"{csv_path}:{line}: {value!r} is not a {attribute} label {list(label_order)}")
        files.append(path)
        targets.append(label_order.index(value))
    if not files:
        raise InvalidDataset(f"No photo of {csv_path} was found under {root}.")
    return FolderDataset(tuple(files), np.array(targets, dtype=np.int64), label_order)


def load_dataset(root: Path, *, labels_csv: Path | None, attribute: str, labels: Iterable[str] | None) -> FolderDataset:
    """A folder-per-label directory, or photos under `root` labelled by a CSV column named `attribute`."""
    if labels_csv is None:
        return load_folder_dataset(root, labels)
    if labels is None:
        raise InvalidDataset(f"{attribute!r} has no label set; train it from a folder-per-label directory.")
    return load_labelled_csv(root, labels_csv, attribute, labels)


def embed_files(
    backbone: Backbone,
    files: Iterable[Path],
    *,
    progress: Callable[[int], None] | None = None,
    features: str = FEATURES_EMBEDDING,
) -> tuple[NDArray[np.float32], list[Path]]:
    """Embed image files in batches (as head inputs of kind `features`).

    Unreadable files are skipped and returned as the second value.
    """
    vectors: list[NDArray[np.float32]] = []
    skipped: list[Path] = []
    batch: list[NDArray[np.float32]] = []
    batch_images: list[Image.Image] = []

    def flush() -> None:
        if batch:
            embeddings = backbone.embed_batch(np.stack(batch))
            images = batch_images if features != FEATURES_EMBEDDING else None
            vectors.append(head_features(features, embeddings, images))
            batch.clear()
            batch_images.clear()

    for path in files:
        try:
            image = decode_image(
                path.read_bytes(),
                max_bytes=TRAINING_MAX_BYTES,
                max_pixels=TRAINING_MAX_PIXELS,
                draft_size=model_draft_size(backbone.input_size),
            )
            batch.append(backbone.preprocess(image))
            if features != FEATURES_EMBEDDING:
                batch_images.append(image)
        except (InvalidImage, OSError) as exc:
            logger.warning("skipping %s: %s", path, exc)
            skipped.append(path)
        if len(batch) >= EMBED_BATCH_IMAGES:
            flush()
        if progress:
            progress(1)
    flush()
    dim = vectors[0].shape[1] if vectors else 0
    return (np.concatenate(vectors) if vectors else np.zeros((0, dim), np.float32)), skipped


def targets_embedded(dataset: FolderDataset, skipped: list[Path]) -> NDArray[np.int64]:
    """The targets of the files that `embed_files` did not skip, in the same order as its vectors."""
    skipped_set = set(skipped)
    return dataset.targets[[i for i, path in enumerate(dataset.files) if path not in skipped_set]]


def train_head(
    name: str,
    embeddings: NDArray[np.float32],
    targets: NDArray[np.int64],
    labels: tuple[str, ...],
    *,
    backbone_version: str,
    weight_decay: float = 1e-3,
    epochs: int = 300,
    seed: int = 0,
    features: str = FEATURES_EMBEDDING,
) -> Head:
    """Fit a class-balanced softmax regression on frozen embeddings (full batch, Adam).

    Class weights are inverse frequencies, so a rare label (skirt: 112 of 3068 photos) is not
    drowned out by a common one.
    """
    if len(targets) == 0:  # every photo unreadable: a head fitted on nothing would replace a working one
        raise InvalidDataset(f"No photo could be read to train {name}: nothing was trained.")
    # Imported here, not at the top: web processes import this module (through recognition.versions,
    # which the admin loads) but never train, and torch costs them ~650 MB of memory and a second or more.
    import torch

    torch.manual_seed(seed)
    x = torch.from_numpy(embeddings).float()
    y = torch.from_numpy(targets)
    counts = torch.bincount(y, minlength=len(labels)).float()
    class_weight = torch.where(counts > 0, counts.sum() / (len(labels) * counts.clamp(min=1)), 0.0)
    linear = torch.nn.Linear(x.shape[1], len(labels))
    optimiser = torch.optim.Adam(linear.parameters(), lr=0.01, weight_decay=weight_decay)
    loss_fn = torch.nn.CrossEntropyLoss(weight=class_weight)
    # Embeddings are unit vectors, so logits are small; a fixed scale lets softmax become confident.
    scale = 16.0
    started = time.perf_counter()
    for _ in range(epochs):
        optimiser.zero_grad()
        loss = loss_fn(linear(x * scale), y)
        loss.backward()
        optimiser.step()
    logger.info("trained head %s: loss %.4f in %.1fs", name, loss.item(), time.perf_counter() - started)
    return Head(
        name=name,
        labels=labels,
        weight=(linear.weight.detach().numpy() * scale).astype(np.float32),
        bias=linear.bias.detach().numpy().astype(np.float32),
        backbone_version=backbone_version,
        features=features,
    )


def evaluate_head(head: Head, embeddings: NDArray[np.float32], targets: NDArray[np.int64]) -> dict:
    """Top-1, top-2, top-3, per-class precision/recall and the confusion matrix (rows: truth)."""
    if len(targets) == 0:
        raise InvalidDataset("No photo could be read to evaluate on.")
    probabilities = head.probabilities(embeddings)
    ranked = np.argsort(-probabilities, axis=1)
    n_labels = len(head.labels)
    confusion = np.zeros((n_labels, n_labels), dtype=np.int64)
    for truth, predicted in zip(targets, ranked[:, 0], strict=True):
        confusion[truth, predicted] += 1
    per_class = {}
    for i, label in enumerate(head.labels):
        true_positive = confusion[i, i]
        predicted_total = confusion[:, i].sum()
        actual_total = confusion[i, :].sum()
        # None where nothing was measured: a label never predicted has no precision, one without
        # held-out photos no recall (0.0 would read as "always wrong").
        per_class[label] = {
            "precision": float(true_positive / predicted_total) if predicted_total else None,
            "recall": float(true_positive / actual_total) if actual_total else None,
            "support": int(actual_total),
        }
    hits = ranked == targets[:, None]

    def top(k: int) -> float | None:  # None when k covers every label: 1.0 by construction, not measured
        return float(hits[:, :k].any(axis=1).mean()) if k < n_labels or k == 1 else None

    return {
        "samples": int(len(targets)),
        "top1": top(1),
        "top2": top(2),
        "top3": top(3),
        "per_class": per_class,
        "labels": list(head.labels),
        "confusion": confusion.tolist(),
    }


def format_report(results: dict) -> str:
    """A plain-text report: headline accuracy, per-class table, confusion matrix."""
    labels = results["labels"]
    width = max(len(label) for label in labels) + 2
    lines = [
        f"samples: {results['samples']}",
        f"top-1: {score_shown(results['top1'])}   top-2: {score_shown(results['top2'])}   "
        f"top-3: {score_shown(results['top3'])}",
        "",
        f"{'label':<{width}}{'precision':>10}{'recall':>10}{'support':>9}",
    ]
    for label in labels:
        row = results["per_class"][label]
        precision, recall = score_shown(row["precision"]), score_shown(row["recall"])
        lines.append(f"{label:<{width}}{precision:>10}{recall:>10}{row['support']:>9}")
    lines += ["", "confusion matrix (rows: true label, columns: predicted)"]
    short = [label[:6] for label in labels]
    lines.append(" " * width + "".join(f"{s:>7}" for s in short))
    for label, row in zip(labels, results["confusion"], strict=True):
        lines.append(f"{label:<{width}}" + "".join(f"{v:>7}" for v in row))
    return "\n".join(lines)


def dataset_split(
    dataset: FolderDataset, *, held_out_share: float, seed: int = 0
) -> tuple[FolderDataset, FolderDataset]:
    """Split per label into (train, held out); every label with two photos or more keeps one in each."""
    rng = np.random.default_rng(seed)
    train_idx: list[int] = []
    held_idx: list[int] = []
    for label in range(len(dataset.labels)):
        indices = np.flatnonzero(dataset.targets == label)
        rng.shuffle(indices)
        n_held = int(round(len(indices) * held_out_share))
        if len(indices) >= 2:
            n_held = min(max(n_held, 1), len(indices) - 1)
        held_idx += indices[:n_held].tolist()
        train_idx += indices[n_held:].tolist()

    def subset(indices: list[int]) -> FolderDataset:
        indices = sorted(indices)
        return FolderDataset(tuple(dataset.files[i] for i in indices), dataset.targets[indices], dataset.labels)

    if not held_idx:
        raise InvalidDataset("Too few photos to hold any out for evaluation (at least two per label are needed).")
    return subset(train_idx), subset(held_idx)


def zip_dataset_extract(zip_path: Path, destination: Path, *, max_unpacked_bytes: int) -> Path:
    """Unpack a training zip (a folder per label, at its top or inside one top folder) safely.

    Refuses paths that escape `destination`, and archives that would unpack past the byte cap,
    before writing anything. Returns the folder whose sub-folders are the labels.
    """
    import zipfile

    try:
        archive = zipfile.ZipFile(zip_path)
    except (zipfile.BadZipFile, OSError) as exc:
        raise InvalidDataset(f"Not a readable zip file: {exc}") from None
    with archive:
        members = [m for m in archive.infolist() if not m.is_dir()]
        total = sum(m.file_size for m in members)
        if total > max_unpacked_bytes:
            raise InvalidDataset(f"The zip would unpack to {total} bytes; the limit is {max_unpacked_bytes}.")
        root = destination.resolve()
        for member in members:
            target = (root / member.filename).resolve()
            if not target.is_relative_to(root):
                raise InvalidDataset(f"The zip holds a path outside its folder: {member.filename!r}")
        members = [
            m
            for m in members
            if Path(m.filename).suffix.lower() in IMAGE_SUFFIXES and not _is_metadata_member(m.filename)
        ]
        try:
            archive.extractall(root, members=members)
        except (zipfile.BadZipFile, RuntimeError, NotImplementedError) as exc:
            # A damaged member (bad CRC), an encrypted one or an unsupported compression method.
            raise InvalidDataset(f"The zip could not be unpacked: {exc}") from None
    folders = [p for p in root.iterdir() if p.is_dir() and not is_metadata_name(p.name)]
    if len(folders) == 1 and not any(p.suffix.lower() in IMAGE_SUFFIXES for p in folders[0].iterdir() if p.is_file()):
        return folders[0]  # one top folder that holds the label folders
    return root
