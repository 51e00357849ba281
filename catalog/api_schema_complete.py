"""What every operation of the API may answer, added to the generated OpenAPI schema in one place.

Ninja documents the responses each operation declares. But every operation also answers 405 to a
method it does not serve (catalog/api_error_answers.py), and sends Retry-After with each 429 and 503;
and an answer declared without its own text reads "Bad Request" or "Not Found", which tells a client
nothing. The README promises "every operation's 4xx answers and when each is given".
"""

from __future__ import annotations

from typing import Any

RETRY_AFTER = {"Retry-After": {"description": "seconds to wait before trying again", "schema": {"type": "integer"}}}
ERROR_CONTENT_REF = "#/components/schemas/ErrorOut"
# What each answer means where the operation's declaration says no more than the status's name.
GENERAL_DESCRIPTIONS = {
    "400": "`invalid_request`: a query parameter is unknown, repeated or out of range (the reason names it)",
    "404": "`not_found`: no item has this id",
    "405": "`method_not_allowed`: the operation does not serve this method; `Allow` names the one it does",
    "429": "`rate_limited`: this client sent too many requests; try again after Retry-After",
    "503": "`model_not_ready` or `index_unreadable`: the server is getting ready; try again after Retry-After",
}
PLAIN_STATUS_NAMES = {"Bad Request", "Not Found", "Too Many Requests", "Service Unavailable", "OK", ""}


def schema_completed(schema: dict[str, Any]) -> dict[str, Any]:
    """`schema` with 405 on every operation, Retry-After on every 429 and 503, and texts for bare answers."""
    for operations in schema.get("paths", {}).values():
        for operation in operations.values():
            responses = operation.setdefault("responses", {})  # keyed by int status codes, as Ninja makes them
            responses.setdefault(
                405,
                {
                    "description": GENERAL_DESCRIPTIONS["405"],
                    "headers": {"Allow": {"description": "the methods served", "schema": {"type": "string"}}},
                    "content": {"application/json": {"schema": {"$ref": ERROR_CONTENT_REF}}},
                },
            )
            for code, response in responses.items():
                status = str(code)
                if response.get("description", "") in PLAIN_STATUS_NAMES and status in GENERAL_DESCRIPTIONS:
                    response["description"] = GENERAL_DESCRIPTIONS[status]
                if status in ("429", "503"):
                    response.setdefault("headers", {}).update(RETRY_AFTER)
    return schema
