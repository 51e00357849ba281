"""Query parameters the API does not take are refused, not ignored.

Ignored, `?color=red` (for `colour`) or a filter sent as a form field answered 200 with unfiltered
results that looked filtered; a key given twice answered with whichever value came last.
"""

from __future__ import annotations

from django.http import HttpRequest
from pydantic import BaseModel

from fashion_search.echo import value_echoed

UPLOAD_FIELD = "image"  # the one file part an operation that takes a photo reads


def parameters_unexpected(request: HttpRequest, params: list[BaseModel]) -> str | None:
    """Why the request's parameters are not what the operation reads (`params`, its parsed query
    schemas), or None when they are."""
    known = {name for model in params for name in type(model).model_fields}
    unknown = [key for key in request.GET if key not in known]
    if unknown:
        if not known:
            return f"Unknown query parameter {_echo(unknown[0])}; this operation takes none."
        valid = ", ".join(f"`{name}`" for name in sorted(known))
        return f"Unknown query parameter {_echo(unknown[0])}; this operation takes: {valid}."
    repeated = [key for key, values in request.GET.lists() if len(values) > 1]
    if repeated:
        return f"The query parameter {_echo(repeated[0])} is given more than once; give it once."
    if request.POST:
        field = next(iter(request.POST))
        where = "send it in the query string" if field in known else "the form takes only `image`"
        return f"Unexpected form field {_echo(field)}: {where}."
    return _files_unexpected(request)


def _files_unexpected(request: HttpRequest) -> str | None:
    # Unchecked, a second photo in `image` was searched in place of the first, and a file under
    # another name was dropped without a word.
    for name, files in request.FILES.lists():
        if name != UPLOAD_FIELD:
            return f"Unexpected file {_echo(name)}: the form takes one photo, in `{UPLOAD_FIELD}`."
        if len(files) > 1:
            return f"{len(files)} files sent in `{UPLOAD_FIELD}`: send one photo a request."
    return None


def _echo(name: str) -> str:
    return f"`{value_echoed(name)}`"
