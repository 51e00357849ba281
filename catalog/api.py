"""The JSON API, declared with Django Ninja so that its OpenAPI schema is generated from the code."""

from __future__ import annotations

import uuid
from collections.abc import Callable
from functools import wraps

from django.conf import settings
from django.core.exceptions import RequestDataTooBig
from django.http import HttpRequest, HttpResponse
from ninja import Field, File, NinjaAPI, Query, Schema
from ninja.errors import ValidationError
from ninja.files import UploadedFile

from catalog.presenters import hit_as_dict
from catalog.services.search import MAX_RESULTS, search_by_image
from catalog.shopper_uploads import shopper_photo_keep
from fashion_search.ratelimit import API, UPLOADS, rate_limit_hit
from recognition.errors import ImageTooLarge, ModelNotReady, RecognitionError
from recognition.services import (
    embedding_recognize,
    image_embed,
    recognizer_names_resolve,
    upload_decode,
)

api = NinjaAPI(
    title="Fashion search API",
    version="1",
    description="Recognise garments in photos and find similar catalog items.",
    urls_namespace="api-v1",
)


class ErrorOut(Schema):
    error: str
    reason: str


class CandidateOut(Schema):
    tag: str
    score: float
    attribute: str


class RecognizeOut(Schema):
    jobId: str
    model: str
    candidates: list[CandidateOut]


class ResultOut(Schema):
    id: int
    name: str
    brand: str
    price: str | None
    currency: str
    shop_url: str
    photo_url: str
    score: float
    visual: float
    why: str
    tags: dict[str, str]


class SearchOut(Schema):
    jobId: str
    predictions: dict[str, list[CandidateOut]]
    results: list[ResultOut]


class RecognizeParams(Schema):
    model: str = "type"


class SearchParams(Schema):
    limit: int = Field(12, ge=1, le=MAX_RESULTS, description="how many items to return")


ERRORS = {400: ErrorOut, 413: ErrorOut, 429: ErrorOut, 503: ErrorOut}
_STATUS_BY_ERROR = {ImageTooLarge: 413, ModelNotReady: 503}


def _error(request: HttpRequest, code: str, reason: str, status: int) -> HttpResponse:
    return api.create_response(request, {"error": code, "reason": reason}, status=status)


@api.exception_handler(RecognitionError)
def recognition_error(request: HttpRequest, exc: RecognitionError) -> HttpResponse:
    return _error(request, exc.code, exc.message, _STATUS_BY_ERROR.get(type(exc), 400))


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    reasons = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors
    )
    return _error(request, "invalid_request", reasons or "The request is malformed.", 400)


@api.exception_handler(RequestDataTooBig)
def request_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # Raised by the upload handler (fashion_search/uploads.py) before an oversized body is read.
    return _error(request, "image_too_large", str(exc), 413)


def rate_limited(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 429 with Retry-After once a client is over RATE_LIMIT_API, or RATE_LIMIT_UPLOADS for an upload.

    Applied to every operation before its input is parsed, so malformed requests count too.
    """

    @wraps(run)
    def limited_run(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        waits = [rate_limit_hit(request, group=API, rate=settings.RATE_LIMIT_API)]
        if request.method not in ("GET", "HEAD", "OPTIONS"):
            waits.append(rate_limit_hit(request, group=UPLOADS, rate=settings.RATE_LIMIT_UPLOADS))
        wait = max((w for w in waits if w is not None), default=None)
        if wait is None:
            return run(request, *args, **kwargs)
        response = _error(request, "rate_limited", f"Too many requests; try again in {wait} seconds.", 429)
        response["Retry-After"] = str(wait)
        return response

    return limited_run


api.add_decorator(rate_limited, mode="view")


@api.post("/recognize", response={200: RecognizeOut, **ERRORS}, summary="Recognise a garment photo")
def recognize(request: HttpRequest, image: File[UploadedFile], params: Query[RecognizeParams]):
    """Candidates of the `model` recognizer (or all attributes with `model=fashion`), scores descending."""
    names = recognizer_names_resolve(params.model)
    decoded = upload_decode(image.read())
    shopper_photo_keep(decoded)
    embedding = image_embed(decoded)
    predictions = embedding_recognize(embedding, names=names)
    candidates = [
        {"tag": p.tag, "score": p.score, "attribute": attribute}
        for attribute, ranked in predictions.items()
        for p in ranked
    ]
    candidates.sort(key=lambda c: -c["score"])
    return {"jobId": uuid.uuid4().hex, "model": params.model, "candidates": candidates}


@api.post("/search", response={200: SearchOut, **ERRORS}, summary="Find catalog items similar to a photo")
def search(request: HttpRequest, image: File[UploadedFile], params: Query[SearchParams]):
    """The photo's predicted tags and the most similar catalog items, best first."""
    decoded = upload_decode(image.read())
    shopper_photo_keep(decoded)
    result = search_by_image(image=decoded, limit=params.limit)
    return {
        "jobId": uuid.uuid4().hex,
        "predictions": {
            attribute: [{"tag": p.tag, "score": p.score, "attribute": attribute} for p in ranked]
            for attribute, ranked in result.predictions.items()
        },
        "results": [hit_as_dict(hit) for hit in result.hits],
    }
