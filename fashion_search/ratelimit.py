"""Per-client rate limits, counted in Django's cache by django-ratelimit; the rates live in settings.

The shopper page and the API count photo uploads in one shared group, so a client cannot double its
allowance by switching surface; every API call also counts in the "api" group, and the pages that
search without a photo (refines, text search, Complete the look, item pages) in the "pages" group. Each
surface shapes its own 429 answer (JSON or a page) with a Retry-After header from the seconds this
module returns.
"""

from __future__ import annotations

import ipaddress
import logging

from django.conf import settings
from django.http import HttpRequest
from django_ratelimit.core import get_usage
from redis.exceptions import RedisError

logger = logging.getLogger(__name__)

UPLOADS = "uploads"
API = "api"
PAGES = "pages"


def rate_limit_hit(request: HttpRequest, *, group: str, rate: str) -> int | None:
    """Count this request against the client's `rate` ("30/m") in `group`.

    Returns the seconds to wait when the client is over the limit, else None. Staff are never limited;
    an anonymous client is keyed by its address (see `client_ip`), a signed-in one by its user.
    With settings.RATELIMIT_ENABLE off, or the cache unreachable (logged), nothing is counted.
    """
    user = getattr(request, "user", None)
    if user is not None and user.is_active and user.is_staff:
        return None
    try:
        usage = get_usage(request, group=group, key="user_or_ip", rate=rate, increment=True)
    except (RedisError, OSError) as exc:
        # The limits protect the service; an unreachable cache must not take search down with it.
        logger.error("rate limit not counted, the cache is unreachable: %s", exc)
        return None
    if usage is None or not usage["should_limit"]:
        return None
    # time_left is -1 when the cache could not count (django-ratelimit then fails closed).
    return max(1, usage["time_left"])


def client_ip(request: HttpRequest) -> str:
    """The client's address: REMOTE_ADDR, or the address seen by the outermost of the trusted proxies.

    With RATE_LIMIT_PROXY_COUNT = n, the n-th address from the right of X-Forwarded-For is the one the
    first trusted proxy saw; addresses left of it are typed by the client and never trusted. A missing
    or malformed header falls back to REMOTE_ADDR.
    """
    remote = request.META.get("REMOTE_ADDR") or "0.0.0.0"
    proxies = settings.RATE_LIMIT_PROXY_COUNT
    if proxies <= 0:
        return remote
    hops = [hop.strip() for hop in request.META.get("HTTP_X_FORWARDED_FOR", "").split(",") if hop.strip()]
    if len(hops) < proxies:
        return remote
    candidate = hops[-proxies]
    try:
        ipaddress.ip_address(candidate)
    except ValueError:
        return remote
    return candidate
