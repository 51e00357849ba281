"""A photo saved through the admin is tagged by a real Celery worker process and then found by search.

Runs against the real PostgreSQL and Redis named by DATABASE_URL and REDIS_URL (as `.ci/run` sets them).
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile

from catalog.models import Photo
from tests.conftest import demo_photos
from tests.e2e.workers import NEEDS_POSTGRES_AND_REDIS, worker_environment

pytestmark = NEEDS_POSTGRES_AND_REDIS

ROOT = Path(__file__).resolve().parents[2]
WORKER_WAIT_S = 180


@pytest.fixture
def real_broker():
    from fashion_search.celery import app

    app.conf.task_always_eager = False
    yield
    app.conf.task_always_eager = True


@pytest.fixture
def celery_worker_process(real_broker, tmp_path):
    """A separate `celery worker` process on the test database, media folder and index folder."""
    env = worker_environment()
    log = (tmp_path / "worker.log").open("w")
    process = subprocess.Popen(
        [sys.executable, "-m", "celery", "-A", "fashion_search", "worker", "--pool=solo", "--loglevel=INFO"],
        cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT,
    )
    yield process
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
    log.close()
    print((tmp_path / "worker.log").read_text()[-4000:])


@pytest.mark.django_db(transaction=True)
def test_photo_saved_in_admin_is_tagged_by_a_worker_and_found_by_search(celery_worker_process, admin_client):
    hat = demo_photos(per_type=2)[3]  # hat folder, second photo
    response = admin_client.post(
        "/admin/catalog/item/add/",
        {
            "name": "Worker-tagged hat",
            "currency": "EUR",
            "shop_url": "https://shop.example/worker-hat",
            "photos-TOTAL_FORMS": "1",
            "photos-INITIAL_FORMS": "0",
            "photos-0-image": SimpleUploadedFile("hat.jpg", hat.read_bytes(), content_type="image/jpeg"),
        },
    )
    assert response.status_code == 302
    photo = Photo.objects.get(item__name="Worker-tagged hat")

    deadline = time.monotonic() + WORKER_WAIT_S
    while time.monotonic() < deadline and photo.status == Photo.Status.PENDING:
        assert celery_worker_process.poll() is None, "the worker process died"
        time.sleep(0.5)
        photo.refresh_from_db()
    assert photo.status == Photo.Status.TAGGED
    assert photo.tags.filter(attribute="type").first().value == "hat"

    # The worker publishes newly tagged photos to the index together, within INDEX_SYNC_DELAY_S of tagging.
    while True:
        query = SimpleUploadedFile("q.jpg", hat.read_bytes(), content_type="image/jpeg")
        results = admin_client.post("/api/v1/search", {"image": query}).json()["results"]
        if (results and results[0]["shop_url"] == "https://shop.example/worker-hat") or time.monotonic() > deadline:
            break
        time.sleep(0.5)
    assert results[0]["shop_url"] == "https://shop.example/worker-hat"
    assert results[0]["visual"] > 0.99
