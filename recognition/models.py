"""Recognizer versions: trained heads with their held-out metrics, one of them live per name."""

from __future__ import annotations

from pathlib import Path

from django.conf import settings
from django.core.files.storage import FileSystemStorage
from django.db import models
from django.utils.deconstruct import deconstructible


@deconstructible
class TrainingUploadsStorage(FileSystemStorage):
    """Training zips in TRAINING_UPLOADS_DIR, outside MEDIA_ROOT, so that the site never serves them.

    The folder is read from settings on each use, not fixed when the model loads, so that a test's or
    a deployment's override applies.
    """

    @property
    def base_location(self) -> str:  # type: ignore[override]
        return str(settings.TRAINING_UPLOADS_DIR)

    @property
    def location(self) -> str:  # type: ignore[override]
        return str(Path(self.base_location).resolve())

    @property
    def base_url(self) -> None:  # type: ignore[override]
        return None  # no URL: a zip is read by the training task, never linked


class RecognizerVersion(models.Model):
    class Status(models.TextChoices):
        QUEUED = "queued", "Queued"
        TRAINING = "training", "Training"
        READY = "ready", "Ready"
        FAILED = "failed", "Failed"

    class Source(models.TextChoices):
        BUILTIN = "builtin", "Shipped with the app"
        ZIP = "zip", "Uploaded zip (a folder per label)"
        CATALOG = "catalog", "Hand-set tags of catalog photos"
        FOLDER = "folder", "Folder on the server"

    name = models.SlugField(max_length=50, help_text="e.g. type, pattern, or a new one such as scenes")
    version = models.PositiveIntegerField(editable=False)
    source = models.CharField(max_length=10, choices=Source.choices, default=Source.ZIP)
    upload = models.FileField(
        upload_to="recognizer-uploads/",
        storage=TrainingUploadsStorage(),
        blank=True,
        help_text="A zip with one folder of images per label.",
    )
    data_dir = models.CharField(
        max_length=500, blank=True, help_text="For a folder on the server: its path (a sub-folder per label)."
    )
    status = models.CharField(max_length=10, choices=Status.choices, default=Status.QUEUED, editable=False)
    progress = models.FloatField(default=0.0, editable=False, help_text="0 to 1")
    failure_reason = models.CharField(max_length=500, blank=True, editable=False)
    directory = models.CharField(max_length=500, blank=True, editable=False)
    labels = models.JSONField(default=list, blank=True, editable=False)
    metrics = models.JSONField(default=dict, blank=True, editable=False)
    is_live = models.BooleanField(default=False, editable=False)
    created_at = models.DateTimeField(auto_now_add=True)
    made_live_at = models.DateTimeField(null=True, blank=True, editable=False)

    class Meta:
        ordering = ["name", "-version"]
        constraints = [
            models.UniqueConstraint(fields=["name", "version"], name="unique_recognizer_version"),
            models.UniqueConstraint(
                fields=["name"], condition=models.Q(is_live=True), name="one_live_version_per_recognizer"
            ),
        ]

    def __str__(self) -> str:
        return f"{self.name} v{self.version}"

    @property
    def top1(self) -> float | None:
        return self.metrics.get("evaluation", {}).get("top1")

    @property
    def head_directory(self) -> Path:
        return Path(self.directory)
