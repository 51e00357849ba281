"""INDEX_SEARCH_THREADS reaches the threads that serve requests, where searches run.

The libgomp that FAISS bundles keeps its thread count per thread, so the count must be set in each
request thread (gunicorn --threads), not only in the thread that imported the WSGI module.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import faiss

ROOT = Path(__file__).resolve().parent.parent

# Imports the WSGI module as a gunicorn worker does (no warm-up), then serves one request on a new
# thread, as a gthread worker does, and prints FAISS's thread count in the threads involved.
WEB_PROCESS = """
import json, os, threading
from wsgiref.util import setup_testing_defaults
os.environ["DJANGO_SETTINGS_MODULE"] = "fashion_search.settings"
import django
django.setup()
import faiss
from fashion_search.wsgi import application

def in_new_thread(work):
    seen = []
    thread = threading.Thread(target=lambda: seen.append(work()))
    thread.start()
    thread.join()
    return seen[0]

def serve_then_count():
    environ = {"PATH_INFO": "/no-such-page/"}
    setup_testing_defaults(environ)
    for _chunk in application(environ, lambda status, headers, exc_info=None: None):
        pass
    return faiss.omp_get_max_threads()

print(json.dumps({
    "main_thread": faiss.omp_get_max_threads(),
    "new_thread_not_serving": in_new_thread(faiss.omp_get_max_threads),
    "request_thread": in_new_thread(serve_then_count),
}))
"""


def fresh_thread_default() -> int:
    """FAISS's OpenMP thread count in a thread that never set it (one per core, or OMP_NUM_THREADS)."""
    seen: list[int] = []
    thread = threading.Thread(target=lambda: seen.append(faiss.omp_get_max_threads()))
    thread.start()
    thread.join()
    return seen[0]


def test_a_request_served_on_a_new_thread_searches_with_the_configured_faiss_threads(tmp_path):
    # given a web process configured with a count that differs from a new thread's default
    configured = fresh_thread_default() + 1
    env = {k: v for k, v in os.environ.items() if not k.startswith("DJANGO_")} | {
        "VAR_DIR": str(tmp_path / "var"),
        "WARM_UP_ON_START": "0",
        "INDEX_SEARCH_THREADS": str(configured),
    }
    env.pop("DATABASE_URL", None)

    # when it serves a request on a thread of its own, as gunicorn's request threads are
    result = subprocess.run(
        [sys.executable, "-c", WEB_PROCESS], cwd=ROOT, env=env, capture_output=True, text=True, timeout=120
    )
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads(result.stdout.strip().splitlines()[-1])

    # then that thread searches with the configured count, not the default the setting never reached
    assert report["new_thread_not_serving"] == configured - 1
    assert report["request_thread"] == configured
    assert report["main_thread"] == configured  # where the warm-up searches


def test_the_pinned_application_sets_the_count_inside_each_new_threads_first_request(settings):
    settings.WARM_UP_ON_START = False
    settings.INDEX_SEARCH_THREADS = 0  # importing the module must not change this process's threads
    settings.WEB_GC_TUNE = False
    from fashion_search.wsgi import search_threads_pinned

    # given an application that records FAISS's thread count while it answers
    seen: list[int] = []

    def probe(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        seen.append(faiss.omp_get_max_threads())
        return [b""]

    configured = fresh_thread_default() + 1
    pinned = search_threads_pinned(probe, configured)

    # when two new threads each serve two requests
    def serve_twice() -> None:
        pinned({}, lambda *args: None)
        pinned({}, lambda *args: None)

    for _ in range(2):
        thread = threading.Thread(target=serve_twice)
        thread.start()
        thread.join()

    # then every request ran with the configured count
    assert seen == [configured] * 4
