"""Shopper pages: thin views that parse, call one service, and render."""

from __future__ import annotations

import logging
from collections.abc import Callable
from functools import wraps
from urllib.parse import urlencode

from django.conf import settings
from django.http import HttpRequest, HttpResponse, QueryDict
from django.shortcuts import get_object_or_404, render
from django.urls import reverse
from django.views.decorators.http import require_http_methods, require_safe

from catalog.errors import CatalogError
from catalog.forms import PhotoSearchForm
from catalog.models import Item
from catalog.presenters import hit_as_dict, look_as_dict, predictions_shown, refine_choices
from catalog.query_tokens import query_token_make, query_token_read
from catalog.services.coordination import item_tags, look_suggest
from catalog.services.search import MAX_RESULTS, search_by_embedding, search_by_image, search_similar_to_item
from catalog.services.text_search import MAX_OFFSET, search_by_text, text_search_fewer_words
from catalog.shopper_uploads import shopper_photo_keep
from fashion_search.echo import value_echoed
from fashion_search.plain_numbers import plain_number
from fashion_search.ratelimit import PAGES, UPLOADS, rate_limit_hit
from fashion_search.upload_limits import upload_refused_answer
from fashion_search.wording import counted
from recognition.errors import RecognitionError
from recognition.labels import LABEL_SETS
from recognition.services import upload_decode

logger = logging.getLogger(__name__)


def _wants_panel(request: HttpRequest) -> bool:
    """Whether search.js asks (X-Requested-With: fetch) for only the results panel, not the whole page."""
    return request.headers.get("X-Requested-With") == "fetch"


def _results_template(request: HttpRequest) -> str:
    return "catalog/_results.html" if _wants_panel(request) else "catalog/home.html"


def _upload_refused(request: HttpRequest, message: str, status: int) -> HttpResponse:
    """The page's error state for a body refused by fashion_search.upload_limits (too large, unreadable)."""
    return _partial_marked(
        render(request, _results_template(request), {"form": PhotoSearchForm(), "error": message}, status=status),
        request,
    )


def _partial_marked(response: HttpResponse, request: HttpRequest) -> HttpResponse:
    # search.js shows a 5xx body only when it is this panel, never a proxy's or Django's error page.
    if _wants_panel(request):
        response["X-Results-Partial"] = "1"
    return response


def _recognition_error(request: HttpRequest, template: str, context: dict, exc: RecognitionError) -> HttpResponse:
    """The page's error state for `exc`: 413 too large, 503 for a server-side condition, else 400."""
    if exc.unavailable_message:
        logger.error("photo search unavailable (%s): %s", exc.code, exc.message)
        return render(request, template, context | {"error": exc.unavailable_message}, status=503)
    status = 413 if exc.code == "image_too_large" else 400
    return render(request, template, context | {"error": exc.message}, status=status)


def _too_many(response: HttpResponse, wait: int) -> HttpResponse:
    response["Retry-After"] = str(wait)
    return response


def pages_rate_limited(view: Callable[..., HttpResponse]) -> Callable[..., HttpResponse]:
    """Count a page that searches the catalog without a photo against settings.RATE_LIMIT_PAGES.

    Uploads have their own, smaller allowance; these pages are cheaper, but each still costs tens of
    milliseconds of database work, and a script could ask for them without end.
    """

    @wraps(view)
    def limited(request: HttpRequest, *args, **kwargs) -> HttpResponse:
        wait = rate_limit_hit(request, group=PAGES, rate=settings.RATE_LIMIT_PAGES)
        if wait is None:
            return view(request, *args, **kwargs)
        return _too_many(render(request, "too_many_requests.html", {"wait": wait}, status=429), wait)

    return limited


@upload_refused_answer(_upload_refused)
@require_http_methods(["GET", "HEAD", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """Upload a photo, see its tags and the most similar items; also serves the JS partial."""
    return _partial_marked(_home(request, _results_template(request)), request)


def _home(request: HttpRequest, template: str) -> HttpResponse:
    if request.method in ("GET", "HEAD"):
        return render(request, "catalog/home.html", {"form": PhotoSearchForm()})
    if "query" in request.POST:
        return _refine(request, template)
    wait = rate_limit_hit(request, group=UPLOADS, rate=settings.RATE_LIMIT_UPLOADS)
    if wait is not None:
        message = f"You have sent many photos in a short time; please try again in {counted(wait, 'second')}."
        return _too_many(render(request, template, {"form": PhotoSearchForm(), "error": message}, status=429), wait)
    form = PhotoSearchForm(request.POST, request.FILES)
    context: dict = {"form": form}
    if not form.is_valid():
        empty = form.has_error("image", code="empty")  # a 0-byte file was chosen: "choose one" would puzzle
        context["error"] = "The photo is empty (0 bytes); choose another." if empty else "Choose a photo to upload."
        return render(request, template, context, status=400)
    try:
        image = upload_decode(form.cleaned_data["image"].read())
        shopper_photo_keep(image)
        result = search_by_image(image=image)
    except RecognitionError as exc:
        return _recognition_error(request, template, context, exc)
    context = _results_context(result.embedding, result.predictions, result.hits, {}, form, request=request)
    return render(request, template, context)


def _refine(request: HttpRequest, template: str) -> HttpResponse:
    """"The same, but ...": rerun the search of a signed query token with tag filters.

    No photo is sent or embedded, so a refine counts as a page (RATE_LIMIT_PAGES), not as an upload.
    Refused for now (429, 503), the page keeps the refine form with the shopper's choices, so trying
    again is one click, not another upload.
    """
    filters, unknown = _tag_filters(request.POST)
    retry = {
        "form": PhotoSearchForm(), "query_token": request.POST["query"], "refine": refine_choices(filters),
        "filters": filters,
    }
    wait = rate_limit_hit(request, group=PAGES, rate=settings.RATE_LIMIT_PAGES)
    if wait is not None:
        message = f"You have refined many searches in a short time; please try again in {counted(wait, 'second')}."
        return _too_many(render(request, template, retry | {"error": message}, status=429), wait)
    if unknown:
        # The form offers only known labels; silently dropping one would show unfiltered results
        # as if they were filtered.
        error = f"There is no {' or '.join(unknown)} to refine by; choose from the list."
        return render(request, template, {"form": PhotoSearchForm(), "error": error}, status=400)
    try:
        embedding, predictions = query_token_read(request.POST["query"])
    except CatalogError as exc:
        return render(request, template, {"form": PhotoSearchForm(), "error": exc.message}, status=400)
    try:
        hits = search_by_embedding(embedding=embedding, predictions=predictions, filters=filters)
    except RecognitionError as exc:
        return _recognition_error(request, template, retry, exc)
    context = _results_context(embedding, predictions, hits, filters, PhotoSearchForm(), request=request)
    return render(request, template, context)


def _tag_filters(values: QueryDict) -> tuple[dict[str, str], list[str]]:
    """The tag values given per attribute ("" is "any"), and those that are no label of it, as shown in an error."""
    filters = {attribute: values[attribute] for attribute in LABEL_SETS if values.get(attribute)}
    unknown = [f"{a} “{value_echoed(value)}”" for a, value in filters.items() if value not in LABEL_SETS[a].labels]
    return filters, unknown


def _results_context(embedding, predictions, hits, filters: dict[str, str], form, *, request: HttpRequest) -> dict:
    """The results; Complete the look too for a whole page, only its address for search.js.

    search.js shows the similar items first and then asks for the look (`look_panel`): at 100k photos the
    look took about 50 of a page's 90 ms, and the shopper came for the similar items.
    """
    anchor = {attribute: ranked[0].tag for attribute, ranked in predictions.items() if ranked} | filters
    context = {
        "form": form,
        "searched": True,
        "predictions": predictions_shown(predictions),
        "results": [hit_as_dict(hit) for hit in hits],
        "query_token": query_token_make(embedding, predictions),
        "refine": refine_choices(filters),
        "filters": filters,
    }
    if _wants_panel(request):
        # Without a type there is no body place to complete (look_suggest answers nothing).
        return context | {"look_url": f"{reverse('look_panel')}?{urlencode(anchor)}" if "type" in anchor else ""}
    return context | {"look": look_as_dict(look_suggest(anchor_tags=anchor))}


@require_safe
@pages_rate_limited
def look_panel(request: HttpRequest) -> HttpResponse:
    """Complete the look for the tags in the address (type, pattern, colour, style), as a fragment of the page."""
    anchor, unknown = _tag_filters(request.GET)
    # A key it does not know (`color`), ignored, would answer a look that seemed to follow it.
    filters = ", ".join(LABEL_SETS)
    unknown += [f"filter “{value_echoed(key)}” (use {filters})" for key in request.GET if key not in LABEL_SETS]
    if unknown:
        message = f"There is no {' or '.join(unknown)}."
        return HttpResponse(message, status=400, content_type="text/plain; charset=utf-8")
    return render(request, "catalog/_look.html", {"look": look_as_dict(look_suggest(anchor_tags=anchor))})


@require_safe
@pages_rate_limited
def item_detail(request: HttpRequest, pk: int) -> HttpResponse:
    """An item's photos, tags and shop link, with similar items and complete-the-look."""
    item = get_object_or_404(Item.objects.prefetch_related("photos__tags"), pk=pk)
    tags = item_tags(item=item)
    context = {"item": item, "tags": tags, "look": look_as_dict(look_suggest(anchor_tags=tags, anchor_item=item))}
    try:
        context["similar"] = [hit_as_dict(hit) for hit in search_similar_to_item(item=item)]
    except RecognitionError as exc:
        # The item itself comes from the database and is still worth showing; only its neighbours are lost.
        logger.error("similar items of item %s unavailable (%s): %s", item.pk, exc.code, exc.message)
        context["similar_error"] = "Similar items cannot be shown right now; please try again later."
    return render(request, "catalog/item.html", context)


@require_safe
@pages_rate_limited
def text_search(request: HttpRequest) -> HttpResponse:
    """Search by words ("red striped shirt") without a photo, a page of SEARCH_RESULTS items at a time."""
    query = request.GET.get("q", "").strip()[:200]
    page, per_page = request.GET.get("page", "1"), min(settings.SEARCH_RESULTS, MAX_RESULTS)
    last_page = MAX_OFFSET // per_page + 1
    page_number = plain_number(page, max_digits=6)
    if page_number is None or page_number < 1:
        error = f"There is no page “{value_echoed(page)}”: a page is a whole number, 1 or more."
        return render(request, "catalog/text_search.html", {"query": query, "error": error}, status=400)
    if page_number > last_page:  # not a count of this search's pages, which the search does not make
        error = f"Page {page_number} is past the last one shown: results go up to page {last_page}."
        return render(request, "catalog/text_search.html", {"query": query, "error": error}, status=400)
    found = search_by_text(query=query, limit=per_page, offset=(page_number - 1) * per_page) if query else None
    context = {
        "query": query,
        "understood": found.understood if found else {},
        "results": [hit_as_dict(hit) for hit in found.hits] if found else [],
        "first_shown": (page_number - 1) * per_page + 1,
        "previous_page": page_number - 1 if page_number > 1 else None,
        "next_page": page_number + 1 if found and found.more else None,
        "fewer_words": text_search_fewer_words(query) if found and not found.hits and page_number == 1 else [],
    }
    return render(request, "catalog/text_search.html", context)
