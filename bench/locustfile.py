"""Shoppers searching by photo: each posts a demo photo to /api/v1/search, waits, and posts another.

Run through bench/load_search.py, which serves the app with gunicorn on PostgreSQL first; by itself:
    locust -f bench/locustfile.py --headless -u 50 -r 50 -t 60s --host http://127.0.0.1:8000
A request fails unless it answers 200 with a JSON body holding results.
"""

from __future__ import annotations

import itertools
import os
import random
from pathlib import Path

from locust import HttpUser, between, task

DEMO_DIR = Path(__file__).resolve().parent.parent / "catalog" / "demo_data"
# Think time between two searches of one shopper, seconds (a person looks at the results first).
WAIT_MIN_S = float(os.environ.get("BENCH_WAIT_MIN_S", "1"))
WAIT_MAX_S = float(os.environ.get("BENCH_WAIT_MAX_S", "3"))

PHOTOS = [(path.name, path.read_bytes()) for path in sorted(DEMO_DIR.glob("*/*.jpg"))]


class Shopper(HttpUser):
    wait_time = between(WAIT_MIN_S, WAIT_MAX_S)

    def on_start(self) -> None:
        # Each shopper walks the photos from a different place, so requests do not come in lockstep.
        start = random.randrange(len(PHOTOS))
        self.photos = itertools.islice(itertools.cycle(PHOTOS), start, None)

    @task
    def search_by_photo(self) -> None:
        name, data = next(self.photos)
        with self.client.post(
            "/api/v1/search?limit=12",
            files={"image": (name, data, "image/jpeg")},
            name="/api/v1/search",
            catch_response=True,
        ) as response:
            if response.status_code == 0:  # no answer at all: refused, reset or timed out
                response.failure(f"connection error: {response.error!r}"[:300])
            elif response.status_code != 200:
                response.failure(f"HTTP {response.status_code}: {response.text[:200]}")
            elif "results" not in response.json():
                response.failure("no results in the answer")
            else:
                response.success()
