"""Recognizer versions: train, evaluate on held-out photos, make live, roll back.

A new version is never made live silently: `version_make_live` refuses one that scores worse
than the live version on its own held-out photos, or learned fewer labels, unless the caller says so
explicitly; and one trained on another backbone than the running one, always.
"""

from __future__ import annotations

import logging
import math
import shutil
import tempfile
from pathlib import Path

import numpy as np
from celery.exceptions import SoftTimeLimitExceeded
from django.conf import settings
from django.db import transaction
from django.db.models import Max
from django.utils import timezone
from kombu.exceptions import OperationalError as BrokerUnavailable

from recognition.errors import InvalidDataset, ModelNotReady, RecognitionError
from recognition.labels import LABEL_SETS
from recognition.models import RecognizerVersion
from recognition.recognizers import (
    BUILTIN_ARTIFACTS_DIR,
    FEATURES_EMBEDDING,
    Head,
    available_recognizers,
    load_head,
    load_metrics,
    save_head,
)
from recognition.training import (
    dataset_split,
    embed_files,
    evaluate_head,
    load_folder_dataset,
    targets_embedded,
    train_head,
    zip_dataset_extract,
)

logger = logging.getLogger(__name__)

# Progress is written to the row at most this often (a fraction of the work), to keep writes few.
PROGRESS_STEP = 0.02


class WorseThanLive(RecognitionError):
    code = "worse_than_live"


class FewerLabelsThanLive(RecognitionError):
    """Its held-out score covers only its own labels: a version trained on two of ten types scores 1.0."""

    code = "fewer_labels_than_live"


class TrainedOnAnotherBackbone(RecognitionError):
    """A head reads the embedding of the backbone it was trained on; on any other its scores mean nothing."""

    code = "trained_on_another_backbone"


def recognizers_live_dirs() -> dict[str, Path]:
    """Where each live recognizer's head is: the shipped heads, overridden by live versions."""
    directories = {name: BUILTIN_ARTIFACTS_DIR / name for name in available_recognizers()}
    for name, directory in RecognizerVersion.objects.filter(is_live=True).values_list("name", "directory"):
        directories[name] = Path(directory)
    return directories


def versions_register_builtin() -> int:
    """Record each shipped head as a version (live when its name has no live version); safe to rerun."""
    created = 0
    for name in available_recognizers():
        directory = str(BUILTIN_ARTIFACTS_DIR / name)
        if RecognizerVersion.objects.filter(name=name, source=RecognizerVersion.Source.BUILTIN).exists():
            continue
        metrics = load_metrics(BUILTIN_ARTIFACTS_DIR / name)
        with transaction.atomic():
            RecognizerVersion.objects.create(
                name=name,
                version=_next_version(name),
                source=RecognizerVersion.Source.BUILTIN,
                status=RecognizerVersion.Status.READY,
                progress=1.0,
                directory=directory,
                labels=metrics.get("evaluation", {}).get("labels", []),
                metrics=metrics,
                is_live=(live := not RecognizerVersion.objects.filter(name=name, is_live=True).exists()),
                made_live_at=timezone.now() if live else None,  # roll-back goes only to versions once live
            )
        created += 1
    return created


def training_folder_refusal(data_dir: str) -> str | None:
    """Why a folder on the server may not be trained on, or None: only folders under TRAINING_FOLDERS_ROOT
    may, links resolved, so that the admin's form reads no other folder of the server."""
    path = Path(data_dir)
    if not path.is_absolute():
        return "Enter a full path, starting with /."
    root = Path(settings.TRAINING_FOLDERS_ROOT).resolve()
    if not path.resolve().is_relative_to(root):
        return f"Only folders under {root} (TRAINING_FOLDERS_ROOT) can be trained on: copy the photos there."
    return None


def version_create(*, name: str, source: str, upload=None, data_dir: str = "") -> RecognizerVersion:
    """Record a new version and queue its training once the row is committed."""
    with transaction.atomic():
        version = RecognizerVersion.objects.create(
            name=name, version=_next_version(name), source=source, data_dir=data_dir
        )
        if upload is not None:
            version.upload.save(upload.name, upload, save=True)
        transaction.on_commit(lambda: _training_queue(version.pk))
    return version


def _training_queue(version_id: int) -> None:
    """Queue the training; with the broker unreachable, fail the version with the reason instead of
    answering the admin's committed save with a 500 and leaving the version queued for good."""
    from recognition.tasks import train_version as train_version_task

    try:
        train_version_task.delay(version_id)
    except BrokerUnavailable as exc:
        reason = f"training could not be queued, the task broker is unreachable ({exc}); add the version again"
        RecognizerVersion.objects.filter(pk=version_id).update(
            status=RecognizerVersion.Status.FAILED, failure_reason=reason[:500]
        )


def version_train(*, version_id: int) -> RecognizerVersion:
    """Train, evaluate on held-out photos and save a queued version; failures are recorded on the row."""
    version = RecognizerVersion.objects.get(pk=version_id)
    if version.status == RecognizerVersion.Status.READY:
        return version
    RecognizerVersion.objects.filter(pk=version_id).update(status=RecognizerVersion.Status.TRAINING, progress=0.0)
    workspace = Path(tempfile.mkdtemp(prefix="recognizer-"))
    try:
        _train_into(version, workspace)
    except Exception as exc:  # any failure must end "training", or the row stays stuck there forever
        reason = _failure_reason(exc, workspace)
        RecognizerVersion.objects.filter(pk=version_id).update(
            status=RecognizerVersion.Status.FAILED, failure_reason=reason[:500]
        )
        if isinstance(exc, RecognitionError):
            logger.warning("recognizer %s failed: %s", version, exc.message)
        else:
            logger.exception("recognizer %s failed unexpectedly", version)
    finally:
        shutil.rmtree(workspace, ignore_errors=True)
        if version.source == RecognizerVersion.Source.CATALOG and version.data_dir:
            # The hand-tagged photos exported for it (links, or copies): the head is what is kept.
            shutil.rmtree(version.data_dir, ignore_errors=True)
    version.refresh_from_db()
    return version


def _train_into(version: RecognizerVersion, workspace: Path) -> None:
    from recognition.services import backbone_get

    if version.source == RecognizerVersion.Source.ZIP:
        if not version.upload:
            raise InvalidDataset("No zip was uploaded.")
        data_root = zip_dataset_extract(
            Path(version.upload.path), workspace, max_unpacked_bytes=settings.RECOGNIZER_ZIP_MAX_UNPACKED_BYTES
        )
    else:
        if version.source == RecognizerVersion.Source.FOLDER and (refusal := training_folder_refusal(version.data_dir)):
            raise InvalidDataset(refusal)  # checked by the form too; a row written otherwise is held to it here
        data_root = Path(version.data_dir)
    label_set = LABEL_SETS.get(version.name)
    dataset = load_folder_dataset(data_root, label_set.labels if label_set else None)
    if len(np.unique(dataset.targets)) < 2:  # one label scores 1.0 on anything: a number not measured
        raise InvalidDataset("Photos of at least two labels are needed to train a recognizer.")
    train, held_out = dataset_split(dataset, held_out_share=settings.RECOGNIZER_HOLDOUT_SHARE)
    features = label_set.features if label_set else FEATURES_EMBEDDING
    backbone = backbone_get()
    total = len(dataset.files)
    done = 0
    reported = 0.0

    def progress(count: int) -> None:
        nonlocal done, reported
        done += count
        share = 0.95 * done / total
        if share - reported >= PROGRESS_STEP:
            reported = share
            RecognizerVersion.objects.filter(pk=version.pk).update(progress=share)

    train_inputs, train_skipped = embed_files(backbone, train.files, progress=progress, features=features)
    held_inputs, held_skipped = embed_files(backbone, held_out.files, progress=progress, features=features)
    if not len(train_inputs):
        raise InvalidDataset(f"None of the {len(train.files)} training photos could be read as an image.")
    if not len(held_inputs):
        raise InvalidDataset(f"None of the {len(held_out.files)} held-out photos could be read as an image.")
    train_targets = targets_embedded(train, train_skipped)
    head = train_head(
        version.name,
        train_inputs,
        train_targets,
        dataset.labels,
        backbone_version=backbone.version,
        features=features,
    )
    results = evaluate_head(head, held_inputs, targets_embedded(held_out, held_skipped))
    _require_finite_scores(results)
    directory = settings.RECOGNIZER_DIR / version.name / f"v{version.version}"
    metrics = {
        "train_samples": len(train.files) - len(train_skipped),
        "train_counts": {
            label: int(count)
            for label, count in zip(
                dataset.labels, np.bincount(train_targets, minlength=len(dataset.labels)), strict=True
            )
        },
        "source": version.source,
        "evaluation": results,
    }
    save_head(head, directory, metrics)
    RecognizerVersion.objects.filter(pk=version.pk).update(
        status=RecognizerVersion.Status.READY,
        progress=1.0,
        directory=str(directory),
        labels=list(dataset.labels),
        metrics=metrics,
        failure_reason="",
    )
    logger.info("trained %s: top-1 %.3f on %d held-out photos", version, results["top1"], results["samples"])


def _require_finite_scores(results: dict) -> None:
    """A NaN score cannot be stored (JSON refuses it) nor compared with the live version's, so it fails."""
    scores = [results.get("top1")] + [results[key] for key in ("top2", "top3") if results.get(key) is not None]
    if not all(isinstance(score, float) and math.isfinite(score) for score in scores):
        raise InvalidDataset("The held-out photos gave no usable score; add more readable photos per label.")


def _failure_reason(exc: Exception, workspace: Path) -> str:
    """What the merchant reads: the error in words, without the server's temporary paths (those go to the log)."""
    if isinstance(exc, SoftTimeLimitExceeded):
        return "Training ran past its time limit; try a smaller zip."
    message = exc.message if isinstance(exc, RecognitionError) else f"{type(exc).__name__}: {exc}".rstrip(": ")
    for path in (f"{workspace.resolve()}/", f"{workspace}/", str(workspace.resolve()), str(workspace)):
        message = message.replace(path, "" if path.endswith("/") else "the uploaded zip")
    if not isinstance(exc, RecognitionError):
        message = f"Training stopped by an unexpected error ({message}); the server log has the details."
    return message


def version_make_live(*, version: RecognizerVersion, allow_worse: bool = False) -> RecognizerVersion:
    """Make `version` the live one of its name.

    Raises WorseThanLive when the live version scored better on held-out photos, and FewerLabelsThanLive
    when it lacks some of the live version's labels, unless `allow_worse`: a worse model is only ever
    put live on purpose. Raises TrainedOnAnotherBackbone whatever the caller says.
    """
    if version.status != RecognizerVersion.Status.READY:
        raise RecognitionError(f"{version} is {version.status}, not ready.")
    head = load_head(Path(version.directory))
    _require_running_backbone(version, head)
    with transaction.atomic():
        live = RecognizerVersion.objects.select_for_update().filter(name=version.name, is_live=True).first()
        if live is not None and live.pk == version.pk:
            return version
        if not allow_worse:
            _require_live_labels(version, head)
        serving_top1, serving = _serving_top1(version.name, live)
        if not allow_worse and serving_top1 is not None and serving_top1 > (version.top1 or 0.0):
            raise WorseThanLive(
                f"{version} scores {version.top1 or 0:.3f} top-1, below the live {serving} at {serving_top1:.3f}; "
                "make it live explicitly if you mean to."
            )
        RecognizerVersion.objects.filter(name=version.name, is_live=True).update(is_live=False)
        RecognizerVersion.objects.filter(pk=version.pk).update(is_live=True, made_live_at=timezone.now())
    version.refresh_from_db()
    logger.info("%s is live", version)
    return version


def _serving_top1(name: str, live: RecognizerVersion | None) -> tuple[float | None, str]:
    """The held-out top-1 of what serves `name` now: its live version, else the shipped head (which has
    no row until `setup_demo` registers it, as on a production site)."""
    if live is not None:
        return live.top1, str(live)
    directory = recognizers_live_dirs().get(name)
    if directory is None:
        return None, ""
    return load_metrics(directory).get("evaluation", {}).get("top1"), f"shipped {name} recognizer"


def _require_running_backbone(version: RecognizerVersion, head: Head) -> None:
    """Never overridable: a head on another backbone's embedding predicts noise, however well it once scored."""
    from recognition.services import backbone_version_configured

    running = backbone_version_configured()
    if head.backbone_version != running:
        raise TrainedOnAnotherBackbone(
            f"{version} was trained on the backbone {head.backbone_version}, but the site runs {running}; "
            "train it again on the current backbone."
        )


def _require_live_labels(version: RecognizerVersion, head: Head) -> None:
    """A version must have learned every label the live one did, or the shop silently loses those labels."""
    live_directory = recognizers_live_dirs().get(version.name)
    if live_directory is None or live_directory == Path(version.directory):
        return
    try:
        live_labels = labels_learned(load_head(live_directory), load_metrics(live_directory))
    except ModelNotReady:
        return  # the live head is gone: nothing is lost by replacing it
    learned = set(labels_learned(head, version.metrics))
    missing = [label for label in live_labels if label not in learned]
    if missing:
        shown = ", ".join(missing[:8]) + (f" and {len(missing) - 8} more" if len(missing) > 8 else "")
        raise FewerLabelsThanLive(
            f"{version} learned {len(live_labels) - len(missing)} of the live version's {len(live_labels)} labels "
            f"(missing: {shown}), and its score covers only those; make it live explicitly if you mean to."
        )


def labels_learned(head: Head, metrics: dict) -> list[str]:
    """The labels a head saw photos of, in its order.

    A head trained for a known label set has a row for every label, learned or not; the photos per
    label are in its metrics (training counts, else held-out support), and a head without either
    counts as knowing all its labels.
    """
    seen: set[str] = {label for label, count in metrics.get("train_counts", {}).items() if count}
    per_class = metrics.get("evaluation", {}).get("per_class", {})
    seen |= {label for label, scores in per_class.items() if scores.get("support")}
    if not metrics.get("train_counts") and not per_class:
        return list(head.labels)
    return [label for label in head.labels if label in seen]


def version_roll_back(*, name: str) -> RecognizerVersion:
    """Make live again the version that was live before the current one."""
    live = RecognizerVersion.objects.filter(name=name, is_live=True).first()
    previous = (
        RecognizerVersion.objects.filter(name=name, status=RecognizerVersion.Status.READY, made_live_at__isnull=False)
        .exclude(pk=live.pk if live else None)
        .order_by("-made_live_at")
        .first()
    )
    if previous is None:
        raise RecognitionError(f"{name} has no earlier live version to roll back to.")
    return version_make_live(version=previous, allow_worse=True)


def version_delete(*, version: RecognizerVersion) -> None:
    """Delete a version that is not live, with its uploaded zip and its trained head.

    The live one is refused: its recognizer would silently vanish (or fall back to the shipped head);
    make another version live first. A shipped head's files are never touched, only its row.
    """
    if version.is_live:
        raise RecognitionError(f"{version} is live; make another version live (or roll back) before deleting it.")
    upload = version.upload.name if version.upload else ""
    directory = Path(version.directory) if version.directory else None
    version.delete()
    if upload:
        version.upload.storage.delete(upload)
    recognizers = Path(settings.RECOGNIZER_DIR).resolve()
    if directory is not None and directory.resolve().is_relative_to(recognizers):
        shutil.rmtree(directory, ignore_errors=True)


def _next_version(name: str) -> int:
    return (RecognizerVersion.objects.filter(name=name).aggregate(top=Max("version"))["top"] or 0) + 1
