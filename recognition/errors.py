"""Typed recognition errors; each carries a stable `code` that API clients can rely on."""

from __future__ import annotations


class RecognitionError(Exception):
    code = "recognition_error"
    # For a condition of the server rather than of the request: what a shopper or API client is told
    # (answered 503), while `message`, which may name files on the server, goes only to the log.
    unavailable_message: str | None = None

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
    unavailable_message = "Photo search is not ready yet; please try again in a minute."


class InvalidDataset(RecognitionError):
    code = "invalid_dataset"
