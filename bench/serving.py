"""Helpers for benchmarks that serve the app: environment, gunicorn start and stop, memory, uploads.

Everything runs on loopback; every process started here is stopped by the caller through `stop`.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
import uuid
from pathlib import Path
from urllib.parse import urlparse

import psutil

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
SERVER_START_S = 300  # every worker loads its models and index before it answers


def app_env(*, database_url: str, var_dir: Path, **extra: str) -> dict[str, str]:
    """The app's environment for a bench: its own database and var dir, production-like, no rate limits."""
    env = {k: v for k, v in os.environ.items() if k not in ("REDIS_URL", "DATABASE_URL")}
    env |= {
        "DATABASE_URL": database_url,
        "VAR_DIR": str(var_dir),
        "MEDIA_ROOT": str(var_dir / "media"),
        "INDEX_DIR": str(var_dir / "index"),
        "STATIC_ROOT": str(var_dir / "staticfiles"),
        # The ONNX export is the same for every bench: share the project's cache.
        "MODEL_CACHE_DIR": os.environ.get("MODEL_CACHE_DIR", str(ROOT / "var" / "models")),
        "CELERY_TASK_ALWAYS_EAGER": "1",
        "DJANGO_DEBUG": "0",
        "DJANGO_SECRET_KEY": "bench-only",
        "DJANGO_ALLOWED_HOSTS": "127.0.0.1",
        "RATELIMIT_ENABLE": "0",  # every request comes from 127.0.0.1
        "LOG_LEVEL": "INFO",
    }
    return env | extra


def database_create_if_missing(url: str) -> None:
    """Create the PostgreSQL database that `url` names when it does not exist yet (benches own theirs)."""
    import psycopg2

    parts = urlparse(url)
    name = parts.path.lstrip("/")
    admin = psycopg2.connect(
        host=parts.hostname, port=parts.port or 5432, user=parts.username, password=parts.password,
        dbname="postgres",
    )
    admin.autocommit = True
    with admin.cursor() as cursor:
        cursor.execute("SELECT 1 FROM pg_database WHERE datname = %s", [name])
        if cursor.fetchone() is None:
            cursor.execute(f'CREATE DATABASE "{name}"')
            print(f"created database {name}")
    admin.close()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def gunicorn_start(env: dict[str, str], *, workers: int, threads: int, log: Path) -> tuple[subprocess.Popen, str]:
    """Serve fashion_search.wsgi (which warms each worker up) and wait until every worker has warmed up."""
    port = free_port()
    log.parent.mkdir(parents=True, exist_ok=True)
    server = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "fashion_search.wsgi", "--bind", f"127.0.0.1:{port}",
         "--workers", str(workers), "--threads", str(threads), "--timeout", "120", "--keep-alive", "10",
         "--error-logfile", "-"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        text = log.read_text()
        if text.count("warmed up (backbone, heads, index)") + text.count("warm-up failed") >= workers:
            return server, f"http://127.0.0.1:{port}"
        time.sleep(0.5)
    stop(server)
    raise SystemExit(f"gunicorn did not warm up within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def stop(process: subprocess.Popen) -> None:
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def children(pid: int) -> list[int]:
    return [child.pid for child in psutil.Process(pid).children()]


def memory_mib(pid: int) -> dict[str, float]:
    """Peak resident memory (VmHWM), resident now (VmRSS) and its anonymous part (RssAnon: heap and
    arrays, without the library code that processes share), MiB."""
    fields = {}
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        key, _, value = line.partition(":")
        if key in ("VmHWM", "VmRSS", "RssAnon"):
            fields[key] = int(value.split()[0]) / 1024
    return {"peak_rss": fields["VmHWM"], "rss": fields["VmRSS"], "anon": fields["RssAnon"]}


def page_headers(base_url: str) -> dict[str, str]:
    """What search.js sends with a photo to the shopper page: the CSRF cookie and token from a GET of the
    page, and the header that asks for the results panel only."""
    with urllib.request.urlopen(f"{base_url}/", timeout=60) as response:
        cookies = response.headers.get_all("Set-Cookie") or []
    token = next(c.split(";")[0].split("=", 1)[1] for c in cookies if c.startswith("csrftoken="))
    return {"Cookie": f"csrftoken={token}", "X-CSRFToken": token, "X-Requested-With": "fetch"}


def post_image(
    url: str, data: bytes, filename: str = "photo.jpg", timeout: float = 120, headers: dict[str, str] | None = None
) -> tuple[int, bytes, float]:
    """POST `data` as the multipart field `image` (with `headers` besides); returns (status, body, seconds)."""
    boundary = uuid.uuid4().hex
    body = (
        f"--{boundary}\r\nContent-Disposition: form-data; name=\"image\"; filename=\"{filename}\"\r\n"
        f"Content-Type: image/jpeg\r\n\r\n"
    ).encode() + data + f"\r\n--{boundary}--\r\n".encode()
    request = urllib.request.Request(
        url,
        data=body,
        method="POST",
        headers={"Content-Type": f"multipart/form-data; boundary={boundary}"} | (headers or {}),
    )
    started = time.perf_counter()
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            payload = response.read()
            status = response.status
    except urllib.error.HTTPError as exc:
        payload, status = exc.read(), exc.code
    return status, payload, time.perf_counter() - started
