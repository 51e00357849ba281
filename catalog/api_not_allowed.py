"""The API answers a method it does not serve in its own JSON error, as it answers everything else.

Django Ninja answers 405 with the text "Method not allowed", which a client parsing the documented
`{"error", "reason"}` cannot read.
"""

from __future__ import annotations

from collections.abc import Callable

from django.http import HttpRequest, HttpResponse, JsonResponse

API_PATH_PREFIX = "/api/"


class ApiMethodNotAllowedMiddleware:
    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        response = self.get_response(request)
        if (
            response.status_code != 405
            or not request.path.startswith(API_PATH_PREFIX)
            or response.get("Content-Type", "").startswith("application/json")
        ):
            return response
        allowed = response.get("Allow", "")
        answer = JsonResponse(
            {"error": "method_not_allowed", "reason": f"{request.method[:10]} is not served here; use {allowed}."},
            status=405,
        )
        answer["Allow"] = allowed
        return answer
