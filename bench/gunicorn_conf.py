"""gunicorn settings for the load benchmark: each worker warms up before it takes a request.

The backbone, the recognizer heads and the index load lazily, once per process. Without a warm-up
the first search each worker answers takes seconds (model load); with it, a worker runs one real
search on a blank image right after it starts, so measured requests never pay for loading. The
model is not loaded in the master with --preload because forking a process after torch has started
its thread pool can hang the children.
"""

from __future__ import annotations

import logging
import time

logger = logging.getLogger("gunicorn.error")

# Idle keep-alive connections are closed after this many seconds. gunicorn's default, 2 s, is shorter
# than a shopper's think time (1-3 s), so a client would now and then send its next request on a
# connection the server is closing and get "connection reset by peer" (measured: 3 to 6 resets a
# minute with 50 shoppers). Behind a proxy that keeps its own pool, this matters less.
keepalive = 10


def post_worker_init(worker: object) -> None:
    from PIL import Image

    from catalog.services.search import search_by_image

    started = time.perf_counter()
    search_by_image(image=Image.new("RGB", (224, 224), "grey"))
    logger.info("worker warmed up (model, heads and index loaded) in %.1fs", time.perf_counter() - started)
