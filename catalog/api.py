"""The JSON API, declared with Django Ninja so that its OpenAPI schema is generated from the code."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Callable
from functools import wraps
from typing import Literal

from django.conf import settings
from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import Http404, HttpRequest, HttpResponse
from django.http.multipartparser import MultiPartParserError
from ninja import Field, File, NinjaAPI, Query, Schema
from ninja.errors import ValidationError
from ninja.files import UploadedFile

from catalog.api_parameters import UPLOAD_FIELD, parameters_unexpected
from catalog.api_schema_complete import schema_completed
from catalog.api_schemas import INVALID_IMAGE, ErrorOut, ResultOut, WholeNumber, upload_error_docs
from catalog.presenters import hit_as_dict
from catalog.services.search import MAX_RESULTS, search_by_image
from catalog.shopper_uploads import shopper_photo_keep
from fashion_search.echo import value_echoed
from fashion_search.ratelimit import API, UPLOADS, rate_limit_hit
from fashion_search.uploads import upload_too_large_message
from fashion_search.wording import counted
from recognition.errors import ImageTooLarge, RecognitionError
from recognition.labels import COLOUR, PATTERN, STYLE, TYPE
from recognition.services import (
    image_embed,
    image_recognize,
    recognizer_names_resolve,
    upload_decode,
)

logger = logging.getLogger(__name__)

class FashionSearchApi(NinjaAPI):
    def get_openapi_schema(self, *, path_prefix: str | None = None, path_params: dict | None = None):
        return schema_completed(super().get_openapi_schema(path_prefix=path_prefix, path_params=path_params))


api = FashionSearchApi(
    title="Fashion search API",
    version="1",
    description=(
        "Recognise garments in photos and find similar catalog items. Parameters go in the query string; "
        "one an operation does not take, or one given twice, answers 400 `invalid_request`."
    ),
    urls_namespace="api-v1",
)


class CandidateOut(Schema):
    tag: str
    score: float
    attribute: str


class RecognizeOut(Schema):
    jobId: str
    model: str
    candidates: list[CandidateOut]


class SearchOut(Schema):
    jobId: str
    predictions: dict[str, list[CandidateOut]]
    results: list[ResultOut]


class RecognizeParams(Schema):
    model: str = Field(
        "type",
        description="a recognizer (type, pattern, colour, style: those trained and live) or `fashion` for all "
        "of them; any other value answers 400 listing the valid ones",
    )


class SearchParams(Schema):
    limit: WholeNumber = Field(12, ge=1, le=MAX_RESULTS, description="how many items to return")
    type: Literal[TYPE.labels] | None = Field(None, description="only items of this type")  # type: ignore[valid-type]
    pattern: Literal[PATTERN.labels] | None = Field(None, description="only items with this pattern")  # type: ignore[valid-type]
    colour: Literal[COLOUR.labels] | None = Field(None, description="only items of this colour")  # type: ignore[valid-type]
    style: Literal[STYLE.labels] | None = Field(None, description="only items of this style")  # type: ignore[valid-type]

    def filters(self) -> dict[str, str]:
        """The shopper's refinements: "the same, but in red" is `colour=red`."""
        chosen = {"type": self.type, "pattern": self.pattern, "colour": self.colour, "style": self.style}
        return {attribute: value for attribute, value in chosen.items() if value}


ERRORS = {400: ErrorOut, 413: ErrorOut, 429: ErrorOut, 503: ErrorOut}
_STATUS_BY_ERROR = {ImageTooLarge: 413}
# A model still loading is ready in seconds, an index being rebuilt in minutes: a client that waits this
# long between tries does not hammer a server that is busy getting ready.
UNAVAILABLE_RETRY_AFTER_S = 30


def api_error(request: HttpRequest, code: str, reason: str, status: int) -> HttpResponse:
    """The API's error answer: `{"error": code, "reason": sentence}`, as every operation and the middleware give it."""
    return api.create_response(request, {"error": code, "reason": reason}, status=status)


@api.exception_handler(RecognitionError)
def recognition_error(request: HttpRequest, exc: RecognitionError) -> HttpResponse:
    if exc.unavailable_message:  # a condition of the server: the detail, which may name files, is logged
        logger.error("API %s unavailable (%s): %s", request.path, exc.code, exc.message)
        response = api_error(request, exc.code, exc.unavailable_message, 503)
        response["Retry-After"] = str(UNAVAILABLE_RETRY_AFTER_S)
        return response
    return api_error(request, exc.code, exc.message, _STATUS_BY_ERROR.get(type(exc), 400))


@api.exception_handler(ValidationError)
def validation_error(request: HttpRequest, exc: ValidationError) -> HttpResponse:
    if any(tuple(error.get("loc", ()))[:1] == ("file",) for error in exc.errors):
        # No file part `image`: a raw image body, JSON, or the photo sent as a text field. Ninja's own
        # "file.image: Field required" does not say how to send it.
        content_type = value_echoed(request.content_type or "none")
        reason = (
            f"No photo in the request: send it as multipart/form-data, in a file part named `{UPLOAD_FIELD}` "
            f"(this request's body is {content_type})."
        )
        return api_error(request, "invalid_request", reason, 400)
    reasons = "; ".join(
        f"{'.'.join(str(p) for p in error.get('loc', ()))}: {error.get('msg', 'invalid')}" for error in exc.errors
    )
    return api_error(request, "invalid_request", reasons or "The request is malformed.", 400)


@api.exception_handler(Http404)
def not_found(request: HttpRequest, exc: Http404) -> HttpResponse:
    return api_error(request, "not_found", "No such item.", 404)


@api.exception_handler(RequestDataTooBig)
def request_too_big(request: HttpRequest, exc: RequestDataTooBig) -> HttpResponse:
    # Raised by the upload handler (fashion_search/uploads.py) before an oversized body is read; worded
    # as the pages word it (the photo's limit in MB), the body's exact size only in the log.
    logger.info("API %s refused an oversized body: %s", request.path, exc)
    return api_error(request, "image_too_large", upload_too_large_message(request), 413)


@api.exception_handler(MultiPartParserError)
def malformed_multipart(request: HttpRequest, exc: MultiPartParserError) -> HttpResponse:
    # Raised when the operation first reads request.FILES: a missing or invalid boundary, a body cut short.
    # Without this handler, Django answers with its HTML 400 page.
    return api_error(request, "invalid_request", f"The body is not valid multipart/form-data: {exc}", 400)


@api.exception_handler(TooManyFieldsSent)
@api.exception_handler(TooManyFilesSent)
def too_many_parts(request: HttpRequest, exc: TooManyFieldsSent | TooManyFilesSent) -> HttpResponse:
    # Suspicious operations: logged to Django's security logger, as Django's own handler does.
    logging.getLogger(f"django.security.{type(exc).__name__}").error(
        str(exc), extra={"status_code": 400, "request": request}
    )
    return api_error(request, "invalid_request", "The body has too many form fields or files.", 400)


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
        reason = f"Too many requests; try again in {counted(wait, 'second')}."
        response = api_error(request, "rate_limited", reason, 429)
        response["Retry-After"] = str(wait)
        return response

    return limited_run


api.add_decorator(rate_limited, mode="view")


def parameters_checked(run: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Answer 400 to a query parameter the operation does not take, or one given twice, and to form fields."""

    @wraps(run)
    def checked_run(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        reason = parameters_unexpected(request, [value for value in kwargs.values() if isinstance(value, Schema)])
        if reason:
            return api_error(request, "invalid_request", reason, 400)
        return run(request, *args, **kwargs)

    return checked_run


api.add_decorator(parameters_checked, mode="operation")


@api.post(
    "/recognize",
    response={200: RecognizeOut, **ERRORS},
    summary="Recognise a garment photo",
    openapi_extra=upload_error_docs(
        f"{INVALID_IMAGE}; `unknown_recognizer`: `model` names no live recognizer; "
        "`invalid_request`: the `image` part is missing, or a query parameter is unknown or repeated"
    ),
)
def recognize(request: HttpRequest, image: File[UploadedFile], params: Query[RecognizeParams]):
    """Candidates of the `model` recognizer (or all attributes with `model=fashion`), scores descending."""
    names = recognizer_names_resolve(params.model)
    decoded = upload_decode(image.read())
    shopper_photo_keep(decoded)
    embedding = image_embed(decoded)
    predictions = image_recognize(image=decoded, embedding=embedding, names=names)
    candidates = [
        {"tag": p.tag, "score": p.score, "attribute": attribute}
        for attribute, ranked in predictions.items()
        for p in ranked
    ]
    candidates.sort(key=lambda c: -c["score"])
    return {"jobId": uuid.uuid4().hex, "model": params.model, "candidates": candidates}


@api.post(
    "/search",
    response={200: SearchOut, **ERRORS},
    summary="Find catalog items similar to a photo",
    openapi_extra=upload_error_docs(
        f"{INVALID_IMAGE}; `invalid_request`: the `image` part is missing, `limit` is out of range, "
        "or a query parameter is unknown (`color` for `colour`, say) or repeated"
    ),
)
def search(request: HttpRequest, image: File[UploadedFile], params: Query[SearchParams]):
    """The photo's predicted tags and the most similar catalog items, best first."""
    decoded = upload_decode(image.read())
    shopper_photo_keep(decoded)
    result = search_by_image(image=decoded, limit=params.limit, filters=params.filters())
    return {
        "jobId": uuid.uuid4().hex,
        "predictions": {
            attribute: [{"tag": p.tag, "score": p.score, "attribute": attribute} for p in ranked]
            for attribute, ranked in result.predictions.items()
        },
        "results": [hit_as_dict(hit) for hit in result.hits],
    }


# Browsing operations live in their own module; imported last because it mounts onto `api`.
from catalog.api_browse import router as browse_router  # noqa: E402

api.add_router("/", browse_router)
