"""Answer an oversized upload to a page with a readable 413, before CSRF checking reads the body.

The upload handler (fashion_search/uploads.py) refuses a body over the cap by raising
RequestDataTooBig while the form is parsed. For pages, the first to parse it is
CsrfViewMiddleware, before the view runs, so Django would answer with its bare "Bad Request (400)"
page, or a traceback with DEBUG on. This middleware parses the body first, in `process_view`
(which runs after every middleware's request phase, so `request.user` is known and the limit that
applies to staff is chosen), and answers 413 naming the limit in MB.

A view marked with `upload_refused_answer` renders the refusal itself, in its own error style;
any other page (admin) gets templates/upload_too_large.html. Such a view also answers a body that
cannot be parsed as a form (a broken multipart boundary, more fields or files than Django allows)
with a 400 in its own style instead of Django's bare page. Views exempt from CSRF (the JSON API)
are left alone: their body is read inside the view, which answers with its own JSON errors.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from django.core.exceptions import RequestDataTooBig, TooManyFieldsSent, TooManyFilesSent
from django.http import HttpRequest, HttpResponse, UnreadablePostError
from django.http.multipartparser import MultiPartParserError
from django.shortcuts import render

from fashion_search.uploads import upload_too_large_message

UploadRefusedAnswer = Callable[[HttpRequest, str, int], HttpResponse]

UNREADABLE_FORM = "The photo could not be read from the request (the form arrived malformed); choose it and send again."


def upload_refused_answer(answer: UploadRefusedAnswer) -> Callable[[Callable], Callable]:
    """Mark a view so that a refused body is answered by `answer(request, message, status)`: 413 for
    one over the cap, 400 for one that is not a readable form.

    Apply it outermost, above decorators that wrap the view.
    """

    def mark(view: Callable) -> Callable:
        view.upload_refused_answer = answer  # type: ignore[attr-defined]
        return view

    return mark


class UploadLimitMiddleware:
    """Refuse an oversized request body to a page with a readable 413; place before CsrfViewMiddleware."""

    def __init__(self, get_response: Callable[[HttpRequest], HttpResponse]) -> None:
        self.get_response = get_response

    def __call__(self, request: HttpRequest) -> HttpResponse:
        return self.get_response(request)

    def process_view(
        self, request: HttpRequest, view_func: Callable, view_args: tuple, view_kwargs: dict[str, Any]
    ) -> HttpResponse | None:
        if request.method != "POST" or getattr(view_func, "csrf_exempt", False):
            return None
        try:
            # Parsed here rather than in CsrfViewMiddleware; Django keeps the result for everyone after.
            # A declared Content-Length over the cap is refused before any of the body is read.
            request.POST  # noqa: B018
        except RequestDataTooBig:
            return self._refuse(request, view_func)
        except UnreadablePostError:
            return None  # the client went away mid-body: CsrfViewMiddleware handles it, as before
        except (MultiPartParserError, TooManyFieldsSent, TooManyFilesSent):
            answer = getattr(view_func, "upload_refused_answer", None)
            if answer is None:
                raise  # Django's own 400, as before: going on would serve the request as an empty form
            return answer(request, UNREADABLE_FORM, 400)
        return None

    @staticmethod
    def _refuse(request: HttpRequest, view_func: Callable) -> HttpResponse:
        message = upload_too_large_message(request)
        answer = getattr(view_func, "upload_refused_answer", None)
        if answer is not None:
            return answer(request, message, 413)
        return render(request, "upload_too_large.html", {"error": message}, status=413)
