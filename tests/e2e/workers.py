"""What the tests that start real Celery worker processes share: when they run, and the workers' environment.

Their queue, one for each test, is the `queue` fixture of tests/e2e/conftest.py.
"""

from __future__ import annotations

import os

import pytest
from django.conf import settings
from django.db import connection

UNACKED_KEY = "unacked"  # kombu's Redis hash of delivered, unacknowledged messages
UNACKED_INDEX_KEY = "unacked_index"  # and the delivery time of each

# Real PostgreSQL and Redis only: a worker process cannot share the test's SQLite or in-memory broker.
NEEDS_POSTGRES_AND_REDIS = [
    pytest.mark.integration,
    pytest.mark.skipif(
        not (os.environ.get("REDIS_URL") and os.environ.get("DATABASE_URL")),
        reason="needs DATABASE_URL (PostgreSQL) and REDIS_URL (a real broker); .ci/run sets both",
    ),
]


def worker_environment() -> dict[str, str]:
    """This environment, pointed at the test's database, media folder and index folder, tasks not eager."""
    db = connection.settings_dict
    return os.environ | {
        "DATABASE_URL": f"postgres://{db['USER']}:{db['PASSWORD'] or ''}@{db['HOST']}:{db['PORT']}/{db['NAME']}",
        "MEDIA_ROOT": str(settings.MEDIA_ROOT),
        "INDEX_DIR": str(settings.INDEX_DIR),
        "CELERY_TASK_ALWAYS_EAGER": "0",
    }
