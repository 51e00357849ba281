"""Hand-set catalog tags are training data: export them as a folder-per-label set and train on it."""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path

from django.conf import settings
from django.utils import timezone

from catalog.models import Tag
from fashion_search.echo import value_echoed
from recognition.errors import InvalidDataset
from recognition.labels import LABEL_SETS
from recognition.models import RecognizerVersion
from recognition.versions import version_create


def hand_tags_export(*, attribute: str, directory: Path) -> dict[str, int]:
    """Link (or copy) every photo with a hand-set `attribute` tag into `directory/<value>/`; counts per value."""
    counts: dict[str, int] = {}
    tags = Tag.objects.filter(attribute=attribute, source=Tag.Source.HAND).select_related("photo")
    for tag in tags.iterator():
        source = Path(tag.photo.image.path)
        if not source.exists():
            continue
        target = directory / tag.value / f"{tag.photo_id}{source.suffix.lower()}"
        target.parent.mkdir(parents=True, exist_ok=True)
        try:
            os.link(source, target)  # no copy where the filesystem allows it
        except OSError:
            shutil.copy2(source, target)
        counts[tag.value] = counts.get(tag.value, 0) + 1
    return counts


def recognizer_train_from_hand_tags(*, attribute: str) -> RecognizerVersion:
    """Queue a new version of `attribute`'s recognizer trained on the catalog's hand-set tags (exported to
    a folder of its own, removed once the version is trained or has failed)."""
    if attribute not in LABEL_SETS:  # also keeps the value out of the export folder's path
        raise InvalidDataset(
            f"There is no attribute “{value_echoed(attribute)}” to train; choose one of {', '.join(LABEL_SETS)}."
        )
    exports = settings.RECOGNIZER_DIR / "exports"
    exports.mkdir(parents=True, exist_ok=True)
    # A folder of its own, even for two trainings asked for within the same second.
    directory = Path(tempfile.mkdtemp(prefix=f"{attribute}-{timezone.now():%Y%m%d-%H%M%S}-", dir=exports))
    counts = hand_tags_export(attribute=attribute, directory=directory)
    if len(counts) < 2:
        shutil.rmtree(directory, ignore_errors=True)
        raise InvalidDataset(
            f"Hand-set {attribute} tags cover {len(counts)} value(s); at least two are needed to train."
        )
    return version_create(name=attribute, source=RecognizerVersion.Source.CATALOG, data_dir=str(directory))
