"""Whatever goes wrong under /api/, the answer is the API's JSON error, never an HTML page.

Django Ninja answers 405 with the text "Method not allowed", and Django answers a path no operation
serves (a trailing slash, a typo) and an uncaught exception with its HTML pages: a client parsing
the documented `{"error", "reason"}` can read none of them. HEAD is answered as GET without the
body, as HTTP asks of every resource that serves GET.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse
from django.urls import Resolver404, resolve

from catalog.api import api_error
from fashion_search.echo import value_echoed

API_PATH_PREFIX = "/api/"
DOCS_PATH = "/api/v1/docs"


class ApiErrorAnswersMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        if not request.path.startswith(API_PATH_PREFIX):
            return self.get_response(request)
        method = request.method or ""
        if method == "HEAD":
            request.method = "GET"
        response = self.get_response(request)
        if not response.get("Content-Type", "").startswith("application/json"):
            response = _json_answer(request, response, method)
        if method == "HEAD":
            response = _without_body(response)
        return response


def _json_answer(request: HttpRequest, response: HttpResponse, method: str) -> HttpResponse:
    if response.status_code == 405:
        allowed = response.get("Allow", "")
        reason = f"{value_echoed(method)} is not served here; use {allowed}."
        answer = api_error(request, "method_not_allowed", reason, 405)
        answer["Allow"] = allowed
        return answer
    if response.status_code == 404:
        return api_error(request, "not_found", _not_found_reason(request.path), 404)
    if response.status_code >= 500:
        # The exception is logged with its traceback by Django's handler, which made this response.
        return api_error(request, "server_error", "Something went wrong on the server; it has been logged.", 500)
    return response


def _not_found_reason(path: str) -> str:
    if path.endswith("/") and _is_served(path.rstrip("/")):
        return f"No operation at {value_echoed(path)}; drop the trailing slash: {value_echoed(path.rstrip('/'))}."
    return f"No operation at {value_echoed(path)}; the operations are listed at {DOCS_PATH}."


def _is_served(path: str) -> bool:
    try:
        resolve(path)
    except Resolver404:
        return False
    return True


def _without_body(response: HttpResponse) -> HttpResponse:
    if not response.streaming:
        response["Content-Length"] = str(len(response.content))
        response.content = b""
    return response
