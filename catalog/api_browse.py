"""API operations for browsing: item details, similar items, complete-the-look, text search.

A Ninja router mounted on the API of `catalog/api.py`, which holds the shared schemas and error mapping.
"""

from __future__ import annotations

from django.http import HttpRequest
from django.shortcuts import get_object_or_404
from ninja import Field, File, Query, Router, Schema
from ninja.files import UploadedFile
from pydantic import field_validator

from catalog.api_schemas import INVALID_IMAGE, ErrorOut, ItemFieldsOut, ResultOut, WholeNumber, upload_error_docs
from catalog.models import Item
from catalog.presenters import hit_as_dict, item_as_dict, look_as_dict
from catalog.services.coordination import item_tags, look_suggest
from catalog.services.search import MAX_RESULTS, search_similar_to_item
from catalog.services.text_search import MAX_OFFSET, search_by_text
from catalog.shopper_uploads import shopper_photo_keep
from recognition.services import image_embed, image_recognize, recognizer_names_resolve, upload_decode

router = Router(tags=["browse"])


class ItemOut(ItemFieldsOut):
    description: str
    tags: dict[str, str]
    photo_urls: list[str]


class LookItemOut(Schema):
    id: int
    name: str
    brand: str
    price: str | None
    currency: str
    shop_url: str
    photo_url: str
    score: float
    reason: str
    tags: dict[str, str]


class LookGroupOut(Schema):
    place: str = Field(description="top, bottom, dress, outerwear, shoes or hat")
    items: list[LookItemOut]


class LookOut(Schema):
    tags: dict[str, str] = Field(description="the tags the look was built around")
    groups: list[LookGroupOut]


class ResultsOut(Schema):
    results: list[ResultOut]


class TextSearchOut(Schema):
    understood: dict[str, str] = Field(description="words of the query read as tag filters")
    results: list[ResultOut]
    more: bool = Field(description="whether more items match: ask again with offset + limit")


class LimitParams(Schema):
    limit: WholeNumber = Field(12, ge=1, le=MAX_RESULTS)


class TextSearchParams(Schema):
    q: str = Field(..., min_length=1, max_length=200, description='words such as "red striped shirt"')
    limit: WholeNumber = Field(12, ge=1, le=MAX_RESULTS)
    offset: WholeNumber = Field(0, ge=0, le=MAX_OFFSET, description="how many matching items to skip")

    @field_validator("q")
    @classmethod
    def _has_a_word(cls, q: str) -> str:
        # Spaces alone answered 200 with nothing found, where an empty q answers 400.
        if not q.strip():
            raise ValueError("give at least one word")
        return q


NOT_FOUND = {404: ErrorOut, 400: ErrorOut, 429: ErrorOut}


def _item(pk: int) -> Item:
    return get_object_or_404(Item.objects.prefetch_related("photos"), pk=pk)


@router.get("/items/{item_id}", response={200: ItemOut, **NOT_FOUND}, summary="An item of the catalog")
def item_detail(request: HttpRequest, item_id: WholeNumber):
    item = _item(item_id)
    return item_as_dict(item, tags=item_tags(item=item))


@router.get(
    "/items/{item_id}/similar",
    response={200: ResultsOut, **NOT_FOUND, 503: ErrorOut},
    summary="Items that look alike",
    openapi_extra={
        "responses": {503: {"description": "`index_unreadable`: the search index cannot be read until it is rebuilt"}}
    },
)
def item_similar(request: HttpRequest, item_id: WholeNumber, params: Query[LimitParams]):
    hits = search_similar_to_item(item=_item(item_id), limit=params.limit)
    return {"results": [hit_as_dict(hit) for hit in hits]}


@router.get("/items/{item_id}/look", response={200: LookOut, **NOT_FOUND}, summary="Complete the look of an item")
def item_look(request: HttpRequest, item_id: WholeNumber):
    item = _item(item_id)
    tags = item_tags(item=item)
    return {"tags": tags, "groups": look_as_dict(look_suggest(anchor_tags=tags, anchor_item=item))}


@router.post(
    "/look",
    response={200: LookOut, 400: ErrorOut, 413: ErrorOut, 429: ErrorOut, 503: ErrorOut},
    summary="Complete the look of a photo",
    openapi_extra=upload_error_docs(
        f"{INVALID_IMAGE}; `invalid_request`: the `image` part is missing or sent twice, or a query parameter "
        "or form field is given (it takes none)"
    ),
)
def photo_look(request: HttpRequest, image: File[UploadedFile]):
    """Items of complementary types that go with the garment in the photo."""
    decoded = upload_decode(image.read())
    shopper_photo_keep(decoded)
    predictions = image_recognize(
        image=decoded, embedding=image_embed(decoded), names=recognizer_names_resolve("fashion")
    )
    tags = {attribute: ranked[0].tag for attribute, ranked in predictions.items() if ranked}
    return {"tags": tags, "groups": look_as_dict(look_suggest(anchor_tags=tags))}


@router.get("/search/text", response={200: TextSearchOut, 400: ErrorOut, 429: ErrorOut}, summary="Search by words")
def text_search(request: HttpRequest, params: Query[TextSearchParams]):
    found = search_by_text(query=params.q, limit=params.limit, offset=params.offset)
    return {"understood": found.understood, "results": [hit_as_dict(hit) for hit in found.hits], "more": found.more}
