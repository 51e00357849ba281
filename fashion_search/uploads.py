"""The upload handler: uploaded files stay in memory, bounded, and are never written to a temporary file.

Django's default handlers spool any file over FILE_UPLOAD_MAX_MEMORY_SIZE to a temporary file. It is
deleted when the request ends, but it still puts a shopper's photo on disk (and leaves it there if the
process is killed mid-request). This handler keeps every file in memory instead and bounds that memory
by refusing an oversized request body before reading it, and again while reading it, since a
Content-Length can understate the body.
"""

from __future__ import annotations

from io import BytesIO
from typing import Any

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.core.files.uploadedfile import InMemoryUploadedFile
from django.core.files.uploadhandler import FileUploadHandler, StopFutureHandlers
from django.http import HttpRequest

from fashion_search.sizes import megabytes

# Multipart headers and the other form fields (CSRF token, a few parameters) around the image.
FORM_OVERHEAD_BYTES = 1024 * 1024


def _is_staff(request: HttpRequest | None) -> bool:
    user = getattr(request, "user", None)
    return user is not None and user.is_active and user.is_staff


def upload_request_max_bytes(request: HttpRequest | None) -> int:
    """The largest request body accepted: staff upload catalog photos, everyone else one shopper photo."""
    if _is_staff(request):
        return settings.STAFF_UPLOAD_MAX_BYTES
    return settings.MAX_UPLOAD_BYTES + FORM_OVERHEAD_BYTES


def upload_too_large_message(request: HttpRequest | None) -> str:
    """What to tell someone whose request body was refused: the limit that applies to them, in MB.

    Shoppers are told MAX_UPLOAD_BYTES, the size of the photo itself, not the body cap with its form
    overhead, which they cannot reason about.
    """
    if _is_staff(request):
        return f"The upload is too large: the limit is {megabytes(settings.STAFF_UPLOAD_MAX_BYTES)} MB per request."
    return f"The photo is too large: photos can be up to {megabytes(settings.MAX_UPLOAD_BYTES)} MB."


class BoundedMemoryUploadHandler(FileUploadHandler):
    """Keep each uploaded file in a BytesIO; raise RequestDataTooBig past the request's cap.

    Pages answer it with a 413 (fashion_search/upload_limits.py), the API with a JSON 413 (catalog/api.py).
    """

    def handle_raw_input(
        self, input_data: Any, META: dict, content_length: int, boundary: bytes, encoding: str | None = None
    ) -> None:
        self.max_bytes = upload_request_max_bytes(self.request)
        self.received_bytes = 0
        if content_length and content_length > self.max_bytes:
            raise RequestDataTooBig(f"The upload is {content_length} bytes; the limit is {self.max_bytes} bytes.")

    def new_file(self, *args: Any, **kwargs: Any) -> None:
        super().new_file(*args, **kwargs)
        self.file = BytesIO()
        raise StopFutureHandlers()

    def receive_data_chunk(self, raw_data: bytes, start: int) -> None:
        self.received_bytes += len(raw_data)
        if self.received_bytes > self.max_bytes:
            raise RequestDataTooBig(f"The upload is over the limit of {self.max_bytes} bytes.")
        self.file.write(raw_data)

    def file_complete(self, file_size: int) -> InMemoryUploadedFile:
        self.file.seek(0)
        return InMemoryUploadedFile(
            file=self.file,
            field_name=self.field_name,
            name=self.file_name,
            content_type=self.content_type,
            size=file_size,
            charset=self.charset,
            content_type_extra=self.content_type_extra,
        )
