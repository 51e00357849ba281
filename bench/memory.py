"""Peak memory of a web process and of a tagging worker, for each inference runtime.

    .venv/bin/python bench/memory.py [--searches 30] [--tasks 30]

Set-up: SQLite in var/bench-memory/ with the demo catalog (`setup_demo`, 100 photos, tagged in-process).
Web: gunicorn `fashion_search.wsgi` with 1 worker x 4 threads (it warms up on start), then `--searches`
uploads to `POST /api/v1/search`; the worker's peak resident memory (VmHWM) and its anonymous part at
the end (RssAnon: heap, models, index; library code pages are resident too but shared between processes).
Worker: a real Celery worker as `make worker` starts it (prefork, concurrency 1) on Redis database 7
(REDIS_URL for the bench, default redis://127.0.0.1:6379/7, purged first), tagging `--tasks` photos
again (`tag_photo(force=True)`); the child process that runs the tasks is measured. Each is measured
with RECOGNITION_RUNTIME=onnx and =torch. A benchmark: nothing is asserted.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT), str(ROOT / "bench")]

from embed_throughput import as_uploaded, photo_paths  # noqa: E402
from environment import machine_line, table  # noqa: E402
from serving import VENV_BIN, app_env, children, gunicorn_start, memory_mib, post_image, stop  # noqa: E402

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/7"
TASKS_TIMEOUT_S = 600


def manage(env: dict[str, str], *args: str) -> str:
    result = subprocess.run([str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, check=True,
                            capture_output=True, text=True, timeout=900)
    return result.stdout


def web_memory(env: dict[str, str], searches: int, var_dir: Path, runtime: str) -> dict[str, float]:
    server, base_url = gunicorn_start(env, workers=1, threads=4, log=var_dir / "results" / f"web-{runtime}.log")
    try:
        uploads = [as_uploaded(p) for p in photo_paths("validation")[::11][:searches]]
        for data in uploads:
            status, _, _ = post_image(f"{base_url}/api/v1/search?limit=12", data)
            if status != 200:
                raise SystemExit(f"search answered HTTP {status}")
        return memory_mib(children(server.pid)[0])
    finally:
        stop(server)


QUEUE_SCRIPT = """
import sys, time, django
django.setup()
from django.utils import timezone
from catalog.models import Photo
from catalog.tasks import tag_photo
ids = list(Photo.objects.order_by("pk").values_list("pk", flat=True)[: int(sys.argv[1])])
started = timezone.now()
for pk in ids:
    tag_photo.delay(pk, force=True)
deadline = time.monotonic() + float(sys.argv[2])
while Photo.objects.filter(pk__in=ids, tagged_at__gte=started).count() < len(ids):
    if time.monotonic() > deadline:
        sys.exit("the worker did not tag every photo in time")
    time.sleep(0.5)
"""


def worker_memory(env: dict[str, str], tasks: int, var_dir: Path, runtime: str) -> tuple[dict[str, float], float]:
    log = var_dir / "results" / f"worker-{runtime}.log"
    subprocess.run([str(VENV_BIN / "celery"), "-A", "fashion_search", "purge", "-f"], cwd=ROOT, env=env,
                   check=True, capture_output=True, timeout=60)
    worker = subprocess.Popen(
        [str(VENV_BIN / "celery"), "-A", "fashion_search", "worker", "--loglevel=INFO", "--concurrency=1"],
        cwd=ROOT, env=env, stdout=log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        started = time.perf_counter()
        subprocess.run([str(VENV_BIN / "python"), "-c", QUEUE_SCRIPT, str(tasks), str(TASKS_TIMEOUT_S)], cwd=ROOT,
                       env=env, check=True, timeout=TASKS_TIMEOUT_S + 60)
        elapsed = time.perf_counter() - started
        pool = children(worker.pid)
        return memory_mib(pool[0] if pool else worker.pid), elapsed
    finally:
        stop(worker)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--searches", type=int, default=30)
    parser.add_argument("--tasks", type=int, default=30)
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench-memory")
    args = parser.parse_args(argv)

    print(f"Machine: {machine_line()}\n", flush=True)
    database_url = f"sqlite:///{args.var_dir / 'db.sqlite3'}"
    args.var_dir.mkdir(parents=True, exist_ok=True)
    base = app_env(database_url=database_url, var_dir=args.var_dir, RECOGNITION_THREADS="1")
    manage(base, "migrate", "--noinput", "-v0")
    manage(base, "setup_demo", "-v0")
    manage(base, "repair_index")
    redis_url = os.environ.get("BENCH_REDIS_URL", DEFAULT_REDIS_URL)
    rows = []
    for runtime in ("onnx", "torch"):
        env = base | {"RECOGNITION_RUNTIME": runtime, "DJANGO_SETTINGS_MODULE": "fashion_search.settings"}
        web = web_memory(env, args.searches, args.var_dir, runtime)
        rows.append([f"web: gunicorn worker, 1 x 4 threads, after {args.searches} searches", runtime,
                     f"{web['peak_rss']:.0f}", f"{web['anon']:.0f}", ""])
        worker_env = env | {"REDIS_URL": redis_url, "CELERY_TASK_ALWAYS_EAGER": "0"}
        worker, elapsed = worker_memory(worker_env, args.tasks, args.var_dir, runtime)
        rows.append([f"worker: Celery prefork child, after tagging {args.tasks} photos", runtime,
                     f"{worker['peak_rss']:.0f}", f"{worker['anon']:.0f}", f"{args.tasks} tasks in {elapsed:.0f}s"])
        print(f"  {runtime} measured", file=sys.stderr, flush=True)
    print("#### Peak memory per process (demo catalog of 100 photos)\n")
    print(table(["process", "runtime", "peak RSS MiB", "anonymous RSS MiB at the end", "note"], rows))
    return 0


if __name__ == "__main__":
    sys.exit(main())
