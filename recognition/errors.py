"""Typed recognition errors; each carries a stable `code` that API clients can rely on."""

from __future__ import annotations


class RecognitionError(Exception):
    code = "recognition_error"

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class InvalidImage(RecognitionError):
    code = "invalid_image"


class ImageTooLarge(RecognitionError):
    code = "image_too_large"


class UnknownRecognizer(RecognitionError):
    code = "unknown_recognizer"


class ModelNotReady(RecognitionError):
    code = "model_not_ready"


class InvalidDataset(RecognitionError):
    code = "invalid_dataset"
