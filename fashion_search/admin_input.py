"""Refuse two kinds of malformed admin request with a 400 and a reason, before Django's admin turns them into a 500.

- A NUL character in the address: the admin's list filters and autocomplete pass query values
  straight into queries, and PostgreSQL cannot hold NUL in text (a ValueError, so a 500).
- An action's selection that is not a list of row numbers: `_selected_action=abc` reaches
  `pk__in` unchecked (a ValueError), and a number past 64 bits overflows SQLite.

Every primary key in this project is an integer, which is what makes the second check simple.
The shopper pages and the API check their own input; this covers only the admin.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.contrib.admin.helpers import ACTION_CHECKBOX_NAME
from django.http import HttpRequest, HttpResponse, HttpResponseBadRequest
from django.urls import reverse

from fashion_search.plain_numbers import plain_number

LARGEST_ROW_NUMBER = 2**63 - 1


class AdminInputMiddleware:
    """Place after UploadLimitMiddleware, which parses the body of an oversized upload first."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response
        self.admin_prefix: str | None = None

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        if self.admin_prefix is None:
            self.admin_prefix = reverse("admin:index")
        if not request.path.startswith(self.admin_prefix):
            return None
        if any("\0" in text for key, values in request.GET.lists() for text in (key, *values)):
            return HttpResponseBadRequest("Null characters are not allowed in the address.", content_type="text/plain")
        if request.method == "POST" and not all(map(is_row_number, request.POST.getlist(ACTION_CHECKBOX_NAME))):
            return HttpResponseBadRequest(
                "The selection holds something other than row numbers; go back, reload the list and select again.",
                content_type="text/plain",
            )
        return None


def is_row_number(value: str) -> bool:
    """Whether `value` can be a primary key here: ASCII digits that fit a 64-bit integer (SQLite overflows past it)."""
    number = plain_number(value, max_digits=len(str(LARGEST_ROW_NUMBER)))
    return number is not None and number <= LARGEST_ROW_NUMBER
