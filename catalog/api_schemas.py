"""Schemas shared by the API modules (catalog/api.py and catalog/api_browse.py)."""

from __future__ import annotations

from typing import Annotated

from ninja import Field, Schema
from pydantic import BeforeValidator


def _ascii_digits(value: object) -> object:
    """Pydantic reads "5\x85" (a trailing Unicode space), " 5", "5_0" and "+5" as numbers; a number in a
    URL is plain digits, so anything else is refused rather than quietly read as another value."""
    if isinstance(value, str) and not (value.isascii() and value.isdigit()):
        raise ValueError("expected a whole number written with the digits 0-9 only")
    return value


# A whole number from a path or a query string.
WholeNumber = Annotated[int, BeforeValidator(_ascii_digits)]


class ErrorOut(Schema):
    """Every error answer: a stable code for programs and a sentence for people."""

    error: str = Field(
        description="stable code: invalid_image, unknown_recognizer, invalid_request, image_too_large, "
        "rate_limited, not_found, method_not_allowed, model_not_ready, index_unreadable or server_error",
        examples=["invalid_image"],
    )
    reason: str = Field(description="what went wrong, in a sentence", examples=["Not a supported image."])


class ItemFieldsOut(Schema):
    """What every item shows, wherever it appears (catalog.presenters.item_fields)."""

    id: int
    name: str
    brand: str
    price: str | None
    currency: str
    shop_url: str


class ResultOut(ItemFieldsOut):
    photo_url: str
    score: float
    visual: float
    why: str
    tags: dict[str, str]


INVALID_IMAGE = "`invalid_image`: the file is not a JPEG, PNG, WebP or GIF photo"


def upload_error_docs(bad_request: str) -> dict:
    """OpenAPI text saying when each error answer is given; `bad_request` lists the operation's 400 cases."""
    return {
        "responses": {
            400: {"description": bad_request},
            413: {
                "description": "`image_too_large`: the file is over MAX_UPLOAD_BYTES or the photo over MAX_IMAGE_PIXELS"
            },
            429: {
                "description": "`rate_limited`: this client sent too many requests; try again after Retry-After",
                "headers": {"Retry-After": {"description": "seconds to wait", "schema": {"type": "integer"}}},
            },
            503: {
                "description": "`model_not_ready`: a recognizer or the backbone is not loaded yet; "
                "`index_unreadable`: the search index cannot be read until it is rebuilt; try again later"
            },
        }
    }
