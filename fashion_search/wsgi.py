"""The WSGI application, warmed up before it serves: models and index load once per web process.

It also sets FAISS to one OpenMP thread (INDEX_SEARCH_THREADS) in every thread that serves requests
(`search_threads_pinned`): web processes search one query at a time. And it tunes the cyclic garbage
collector (WEB_GC_TUNE, `garbage_collector_tune`).

Only web servers import this module (gunicorn, `runserver`); `migrate`, `check`, Celery and the tests
never do, so they never pay for the warm-up. Each gunicorn worker imports it after the fork, so each
loads its own backbone session, heads and index once, then answers every request with them. Do not
serve with `--preload`: the models would then load in the master, and inference thread pools do not
survive a fork.
"""

from __future__ import annotations

import gc
import logging
import os
import threading
import time
from collections.abc import Callable, Iterable
from typing import Any

from django.conf import settings
from django.core.wsgi import get_wsgi_application

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "fashion_search.settings")
application = get_wsgi_application()

logger = logging.getLogger(__name__)


def warm_up() -> None:
    """Load the backbone, the recognizer heads and the index, and run one search on a blank image.

    A failure (no database yet, a model not trained) is logged, not raised: the server still starts,
    and the first request that needs the missing piece reports it the usual way.
    """
    from django.db import DatabaseError
    from PIL import Image

    from catalog.services.search import search_by_image
    from recognition.errors import RecognitionError
    from recognition.services import heads_on_another_backbone

    started = time.perf_counter()
    try:
        search_by_image(image=Image.new("RGB", (224, 224), "grey"))
    except (RecognitionError, DatabaseError, OSError) as exc:
        logger.warning("warm-up failed; models load on the first request instead: %s", exc)
        return
    finally:
        _connections_close()
    logger.info("warmed up (backbone, heads, index) in %.1fs", time.perf_counter() - started)
    try:
        stale_heads = heads_on_another_backbone()
    except (RecognitionError, DatabaseError, OSError) as exc:
        logger.warning("could not check the live heads' backbone: %s", exc)
        return
    finally:
        _connections_close()
    for stale in stale_heads:
        logger.warning("recognizer %s: its predictions are meaningless until it is trained again", stale)


def _connections_close() -> None:
    """Requests run on other threads with their own connections; this one's would only sit idle."""
    from django.db import connections

    for connection in connections.all(initialized_only=True):
        if not connection.in_atomic_block:  # a test's transaction, never a server's
            connection.close()


WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


def search_threads_set(threads: int) -> None:
    """Set FAISS's OpenMP threads for the calling thread (searches here are single queries; see settings).

    For the calling thread only: the libgomp that FAISS bundles keeps the count per thread, and a
    thread that never set it starts from one OpenMP thread per core.
    """
    import faiss

    faiss.omp_set_num_threads(threads)


def search_threads_pinned(app: WSGIApp, threads: int) -> WSGIApp:
    """Wrap `app` so that each thread serving requests sets FAISS's OpenMP threads once, before its first.

    Searches run on the server's request threads (gunicorn --threads 4), not on the thread that
    imported this module, and a count set there never reached them: they searched with one OpenMP
    thread per core (reviewer's check: 1 in the main thread, 2 in a new one on 2 cores). A
    thread-local flag makes it one attribute read per request after the first.
    """
    pinned = threading.local()

    def application(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if not getattr(pinned, "done", False):
            search_threads_set(threads)
            pinned.done = True
        return app(environ, start_response)

    return application


def garbage_collector_tune() -> None:
    """Freeze what start-up loaded and collect young objects less often.

    A search builds about 1,200 model instances (200 candidate photos, their items and best tags), and
    Django's prefetch links each tag back to its photo, so they die as reference cycles. With Python's
    default thresholds (700, 10, 10) they are promoted during the request and freed by full
    collections of 72k objects that took 100-190 ms each, every few requests: in-process p95 169 ms
    against a p50 of 42 ms on a 100k catalog. Frozen start-up objects and a gen-0 threshold of 20,000
    gave p95 54 ms, max 56 ms (bench/README.md, "Upload to results over HTTP"), for about 45 MB more.
    """
    gc.freeze()
    gc.set_threshold(20_000, 50, 100)


if settings.INDEX_SEARCH_THREADS:
    search_threads_set(settings.INDEX_SEARCH_THREADS)  # for the warm-up's search, on this thread
    application = search_threads_pinned(application, settings.INDEX_SEARCH_THREADS)
if settings.WARM_UP_ON_START:
    warm_up()
if settings.WEB_GC_TUNE:
    garbage_collector_tune()
