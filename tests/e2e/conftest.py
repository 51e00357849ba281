"""The app served on loopback as `make run` serves it, and one headless Chromium driven by Playwright.

The server is a separate `manage.py runserver` process on its own SQLite database, media and index
folders (embedded defaults: tagging runs in-process on commit), loaded with 12 demo photos and a
merchant account. It is started once per test session and shared by the browser tests and the API fuzz
run, which only read, or add items of their own.

Playwright drives Debian's Chromium (`make browser` installs it); it never downloads a browser. Every
request that leaves loopback is refused, except the demo shop's host, which gets a stub page, so the
tests prove the pages work offline.

The tests that start real Celery workers (tests/e2e/workers.py) each get a queue of their own (`queue`).
"""

from __future__ import annotations

import csv
import io
import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from PIL import Image, ImageChops, ImageStat

from tests.conftest import DEMO_DIR, demo_photos
from tests.e2e.workers import UNACKED_INDEX_KEY, UNACKED_KEY

ROOT = Path(__file__).resolve().parents[2]
CHROMIUM = Path(os.environ.get("CHROMIUM_PATH", "/usr/bin/chromium"))
CHROMIUM_ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]
PHONE = {"viewport": {"width": 390, "height": 844}, "device_scale_factor": 2, "is_mobile": True, "has_touch": True}
DESKTOP = {"viewport": {"width": 1280, "height": 800}}
SHOP_HOST = "shop.example.com"  # the host of every shop URL in catalog/demo_data/items.csv
SCREENSHOT_DIR = ROOT / "bench" / "screenshots"
SCREENSHOT_CHANGED = 0.5  # mean pixel difference (0-255) above which a screenshot is rewritten
MERCHANT = ("merchant", "correct-horse-battery")
SERVER_START_S = 90
# Enough items for a full page of results (SEARCH_RESULTS, 12); tagging each costs ~1 s on a busy CPU.
CATALOG_PHOTOS = 12


@dataclass(frozen=True)
class ServedApp:
    base_url: str
    var_dir: Path
    item_count: int

    def url(self, path: str) -> str:
        return self.base_url + path


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _demo_catalog(target: Path) -> int:
    """Copy CATALOG_PHOTOS demo photos (two of each of the first types), with their CSV rows, into `target`."""
    photos = demo_photos(per_type=2)[:CATALOG_PHOTOS]
    wanted = {p.relative_to(DEMO_DIR).as_posix() for p in photos}
    for photo in photos:
        (target / photo.parent.name).mkdir(parents=True, exist_ok=True)
        shutil.copy(photo, target / photo.parent.name / photo.name)
    with (DEMO_DIR / "items.csv").open(newline="") as source, (target / "items.csv").open("w", newline="") as out:
        reader = csv.DictReader(source)
        writer = csv.DictWriter(out, fieldnames=reader.fieldnames)
        writer.writeheader()
        writer.writerows(row for row in reader if row["file"] in wanted)
    return len(photos)


def _manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([sys.executable, "manage.py", *args], cwd=ROOT, env=env, check=True, capture_output=True)


def _wait_until_serving(url: str, process: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"the server exited with {process.returncode}:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            time.sleep(0.3)
    raise RuntimeError(f"the server did not answer within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


@pytest.fixture(scope="session")
def served_app(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServedApp]:
    """The app on http://127.0.0.1:<free port>/ with a tagged 12-item catalog and a merchant login."""
    root = tmp_path_factory.mktemp("served")
    item_count = _demo_catalog(root / "catalog")
    env = {k: v for k, v in os.environ.items() if k not in {"DATABASE_URL", "REDIS_URL"}}
    env |= {
        "VAR_DIR": str(root / "var"),
        "MEDIA_ROOT": str(root / "var" / "media"),
        "INDEX_DIR": str(root / "var" / "index"),
        "DJANGO_DEBUG": "0",  # shoppers never see a traceback; a 5xx shows up as such in the fuzz run
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "LOG_LEVEL": "WARNING",
        # Every test request comes from 127.0.0.1: the fuzz run alone sends hundreds a minute.
        "RATELIMIT_ENABLE": "0",
        "DJANGO_SUPERUSER_PASSWORD": MERCHANT[1],
    }
    _manage(env, "migrate", "--noinput", "-v0")
    _manage(env, "import_catalog", str(root / "catalog"), "--csv", str(root / "catalog" / "items.csv"), "-v0")
    _manage(env, "createsuperuser", "--noinput", "--username", MERCHANT[0], "--email", "merchant@example.com")

    base_url = f"http://127.0.0.1:{_free_port()}"
    log = root / "server.log"
    with log.open("w") as log_file:
        # --insecure serves static files with DEBUG off, as `make run` does with DEBUG on.
        process = subprocess.Popen(
            [sys.executable, "manage.py", "runserver", base_url.removeprefix("http://"), "--noreload", "--insecure"],
            cwd=ROOT, env=env, stdout=log_file, stderr=subprocess.STDOUT,
        )
        try:
            _wait_until_serving(base_url + "/", process, log)
            yield ServedApp(base_url=base_url, var_dir=root / "var", item_count=item_count)
        finally:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                process.kill()


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module.

    Module scope, not session: Playwright's sync API leaves an event loop marked as running in this
    thread, and Django refuses ORM calls while it is open, so it must be closed before the database
    tests that follow (test_worker_integration.py) and before the test database is torn down.
    """
    if not CHROMIUM.exists():
        pytest.skip(f"{CHROMIUM} is missing: `make browser` installs Debian's chromium")
    from playwright.sync_api import sync_playwright

    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield chromium
        chromium.close()


def _offline(route) -> None:
    """Loopback passes; the demo shop gets a stub page; anything else on the internet is refused."""
    url = route.request.url
    if url.startswith(("http://127.0.0.1", "http://localhost")):
        route.continue_()
    elif SHOP_HOST in url.split("/")[2]:
        route.fulfill(status=200, content_type="text/html", body="<title>Shop</title><h1>Product page</h1>")
    else:
        route.abort()


def new_page(browser, served_app: ServedApp, device: dict, **options):
    """A page in a fresh context (own cookies) for `device`, with every off-loopback request refused."""
    context = browser.new_context(base_url=served_app.base_url, **device, **options)
    context.route("**/*", _offline)
    page = context.new_page()
    page.set_default_timeout(30_000)
    return page


@pytest.fixture
def phone_page(browser, served_app: ServedApp):
    page = new_page(browser, served_app, PHONE)
    yield page
    page.context.close()


@pytest.fixture
def desktop_page(browser, served_app: ServedApp):
    page = new_page(browser, served_app, DESKTOP)
    yield page
    page.context.close()


def screenshot(page, name: str) -> Path:
    """Save a JPEG of the viewport under bench/screenshots/ (linked from the README).

    Waits until the images in view are loaded and decoded. Rewrites the file only when the picture
    changed visibly (a mean pixel difference over SCREENSHOT_CHANGED), so that a test run leaves the
    working tree clean when the page looks the same: decoding and JPEG noise differ from run to run.
    """
    page.wait_for_load_state("networkidle")
    page.evaluate(
        "Promise.all([...document.images].filter(i => i.getBoundingClientRect().top < innerHeight)"
        ".map(i => i.decode().catch(() => null)))"
    )
    picture = page.screenshot(type="jpeg", quality=85, animations="disabled", caret="hide")
    SCREENSHOT_DIR.mkdir(parents=True, exist_ok=True)
    target = SCREENSHOT_DIR / name
    if not target.exists() or _mean_difference(target.read_bytes(), picture) > SCREENSHOT_CHANGED:
        target.write_bytes(picture)
    return target


def _mean_difference(old: bytes, new: bytes) -> float:
    """Mean absolute difference per channel (0-255) of two images; infinite when their sizes differ."""
    a, b = (Image.open(io.BytesIO(data)).convert("RGB") for data in (old, new))
    if a.size != b.size:
        return float("inf")
    return sum(ImageStat.Stat(ImageChops.difference(a, b)).mean) / 3


@pytest.fixture
def queue() -> Iterator[str]:
    """A queue of this test's own, so that no other worker takes its tasks."""
    import redis

    from fashion_search.celery import app

    name = f"worker-test-{uuid.uuid4().hex[:8]}"
    app.conf.task_always_eager = False
    yield name
    app.conf.task_always_eager = True
    # A failed run may leave messages of this queue unacknowledged; no worker will ever consume them.
    client = redis.Redis.from_url(os.environ["REDIS_URL"])
    for tag, raw in client.hgetall(UNACKED_KEY).items():
        if json.loads(raw)[2] == name:
            client.hdel(UNACKED_KEY, tag)
            client.zrem(UNACKED_INDEX_KEY, tag)
    client.delete(name)


@pytest.fixture(scope="module")
def query_photo() -> bytes:
    """A dress photo that is not in the served catalog (the catalog holds the first two of each type)."""
    return demo_photos(per_type=3)[2].read_bytes()
