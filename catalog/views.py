"""Shopper pages: thin views that parse, call one service, and render."""

from __future__ import annotations

import logging

from django.conf import settings
from django.http import HttpRequest, HttpResponse
from django.shortcuts import render
from django.views.decorators.http import require_http_methods

from catalog.forms import PhotoSearchForm
from catalog.presenters import hit_as_dict, predictions_shown
from catalog.services.search import search_by_image
from catalog.shopper_uploads import shopper_photo_keep
from fashion_search.ratelimit import UPLOADS, rate_limit_hit
from recognition.errors import RecognitionError
from recognition.services import upload_decode

logger = logging.getLogger(__name__)


@require_http_methods(["GET", "POST"])
def home(request: HttpRequest) -> HttpResponse:
    """Upload a photo, see its tags and the most similar items; also serves the JS partial."""
    partial = request.headers.get("X-Requested-With") == "fetch"
    template = "catalog/_results.html" if partial else "catalog/home.html"
    if request.method == "GET":
        return render(request, "catalog/home.html", {"form": PhotoSearchForm()})
    wait = rate_limit_hit(request, group=UPLOADS, rate=settings.RATE_LIMIT_UPLOADS)
    if wait is not None:
        message = f"You have sent many photos in a short time; please try again in {wait} seconds."
        response = render(request, template, {"form": PhotoSearchForm(), "error": message}, status=429)
        response["Retry-After"] = str(wait)
        return response
    form = PhotoSearchForm(request.POST, request.FILES)
    context: dict = {"form": form}
    if not form.is_valid():
        context["error"] = "Choose a photo to upload."
        return render(request, template, context, status=400)
    try:
        image = upload_decode(form.cleaned_data["image"].read())
    except RecognitionError as exc:
        context["error"] = exc.message
        return render(request, template, context, status=413 if exc.code == "image_too_large" else 400)
    shopper_photo_keep(image)
    result = search_by_image(image=image)
    context |= {
        "predictions": predictions_shown(result.predictions),
        "results": [hit_as_dict(hit) for hit in result.hits],
        "searched": True,
    }
    return render(request, template, context)
