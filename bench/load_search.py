"""Load benchmark: 50 shoppers searching by photo for 60 s against gunicorn on PostgreSQL, on loopback.

    .venv/bin/python bench/load_search.py [--users 50] [--duration 60] [--workers 2] [--threads 4]

Prepares a database of its own (BENCH_DATABASE_URL, default postgres://postgres@127.0.0.1:5432/
fashion_bench, created if missing), migrates it and loads the tagged demo catalog; serves the app
with gunicorn (bench/gunicorn_conf.py warms each worker up); runs locust headless for the duration;
prints requests per second, latency percentiles and failures with the machine, and exits 1 on any
failure. Every process it starts is stopped; the whole run is bounded by --duration plus set-up.
A benchmark, not a test: timings are printed, never asserted.
"""

from __future__ import annotations

import argparse
import csv
import os
import platform
import subprocess
import sys
import time
import urllib.request
from pathlib import Path
from urllib.parse import urlparse

from serving import app_env, database_create_if_missing, free_port, stop

ROOT = Path(__file__).resolve().parent.parent
VENV_BIN = Path(sys.executable).parent
DEFAULT_DATABASE_URL = "postgres://postgres@127.0.0.1:5432/fashion_bench"
SETUP_TIMEOUT_S = 900  # migrate + import and tag 100 demo photos on a busy 2-core CPU
SERVER_START_S = 180  # gunicorn workers each load torch and the model before they answer


def manage(env: dict[str, str], *args: str) -> None:
    subprocess.run([str(VENV_BIN / "python"), "manage.py", *args], cwd=ROOT, env=env, check=True,
                   timeout=SETUP_TIMEOUT_S)


def wait_until_serving(url: str, server: subprocess.Popen, workers: int, log: Path) -> None:
    """Wait until every worker has warmed up (its log line) and the app answers."""
    deadline = time.monotonic() + SERVER_START_S
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit(f"gunicorn exited with {server.returncode}:\n{log.read_text()[-3000:]}")
        if log.read_text().count("worker warmed up") >= workers:
            with urllib.request.urlopen(url, timeout=10) as response:
                if response.status == 200:
                    return
        time.sleep(0.5)
    raise SystemExit(f"gunicorn did not warm up within {SERVER_START_S} s:\n{log.read_text()[-3000:]}")


def server_cpu_s(master_pid: int) -> float:
    """CPU seconds (user + system) used so far by the gunicorn master and its workers."""
    ticks = os.sysconf("SC_CLK_TCK")
    children = Path(f"/proc/{master_pid}/task/{master_pid}/children").read_text().split()
    total = 0
    for pid in [str(master_pid), *children]:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
        total += int(fields[11]) + int(fields[12])  # utime, stime (fields 14 and 15 of proc(5))
    return total / ticks


def aggregated_row(stats_csv: Path) -> dict[str, str]:
    with stats_csv.open(newline="") as handle:
        return next(row for row in csv.DictReader(handle) if row["Name"] == "Aggregated")


def machine() -> str:
    cpu = next(
        (line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
         if line.startswith("model name")),
        platform.processor(),
    )
    load = " ".join(f"{x:.2f}" for x in os.getloadavg())
    return f"{os.cpu_count()} cores ({cpu}), load average before the run {load}, Python {platform.python_version()}"


def versions() -> str:
    from importlib.metadata import version

    return ", ".join(f"{name} {version(name)}" for name in ("django", "gunicorn", "torch", "faiss-cpu", "locust"))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--users", type=int, default=50)
    parser.add_argument("--spawn-rate", type=float, default=50, help="users started per second")
    parser.add_argument("--duration", type=int, default=60, help="seconds of load")
    parser.add_argument("--workers", type=int, default=2, help="gunicorn worker processes")
    parser.add_argument("--threads", type=int, default=4, help="threads per gunicorn worker")
    parser.add_argument("--wait-min", type=float, default=1.0, help="shortest think time between searches, s")
    parser.add_argument("--wait-max", type=float, default=3.0, help="longest think time between searches, s")
    parser.add_argument("--var-dir", type=Path, default=ROOT / "var" / "bench")
    args = parser.parse_args(argv)

    database_url = os.environ.get("BENCH_DATABASE_URL", DEFAULT_DATABASE_URL)
    database_create_if_missing(database_url)
    # One inference thread per gunicorn worker: the workers already use the cores side by side.
    env = app_env(
        database_url=database_url, var_dir=args.var_dir,
        RECOGNITION_THREADS=os.environ.get("RECOGNITION_THREADS", "1"),
    )
    print(f"preparing {urlparse(database_url).path.lstrip('/')}: migrate, demo catalog, index", flush=True)
    manage(env, "migrate", "--noinput", "-v0")
    manage(env, "setup_demo", "-v0")
    manage(env, "repair_index")

    port = free_port()
    base_url = f"http://127.0.0.1:{port}"
    out = args.var_dir / "results"
    out.mkdir(parents=True, exist_ok=True)
    server_log = out / "gunicorn.log"
    server = subprocess.Popen(
        [str(VENV_BIN / "gunicorn"), "fashion_search.wsgi", "--config", str(ROOT / "bench" / "gunicorn_conf.py"),
         "--bind", f"127.0.0.1:{port}", "--workers", str(args.workers), "--threads", str(args.threads),
         "--timeout", "60", "--error-logfile", "-"],
        cwd=ROOT, env=env, stdout=server_log.open("w"), stderr=subprocess.STDOUT,
    )
    try:
        wait_until_serving(base_url + "/api/v1/openapi.json", server, args.workers, server_log)
        before = machine()
        cpu_before = server_cpu_s(server.pid)
        print(f"serving on {base_url}; {args.users} shoppers for {args.duration} s", flush=True)
        locust = subprocess.run(
            [str(VENV_BIN / "locust"), "-f", str(ROOT / "bench" / "locustfile.py"), "--headless",
             "--host", base_url, "-u", str(args.users), "-r", str(args.spawn_rate), "-t", f"{args.duration}s",
             "--stop-timeout", "10", "--csv", str(out / "search"), "--only-summary", "--loglevel", "WARNING"],
            cwd=ROOT, timeout=args.duration + 120,
            env=os.environ | {"BENCH_WAIT_MIN_S": str(args.wait_min), "BENCH_WAIT_MAX_S": str(args.wait_max)},
        )
        server_cpu = server_cpu_s(server.pid) - cpu_before
    finally:
        stop(server)

    row = aggregated_row(out / "search_stats.csv")
    log_text = server_log.read_text()
    model_loads = log_text.count("loaded backbone")
    failures = int(row["Failure Count"])
    print(
        "\n--- load: POST /api/v1/search\n"
        f"machine: {before}\n"
        f"versions: {versions()}\n"
        f"server: gunicorn {args.workers} workers x {args.threads} threads on 127.0.0.1, PostgreSQL, "
        f"{len(list((ROOT / 'catalog' / 'demo_data').glob('*/*.jpg')))} demo photos indexed\n"
        f"load: {args.users} shoppers, think time {args.wait_min:g}-{args.wait_max:g} s, {args.duration} s\n"
        f"requests: {row['Request Count']}, failures: {failures}\n"
        f"throughput: {float(row['Requests/s']):.1f} requests/s\n"
        f"latency ms: p50 {row['50%']}, p95 {row['95%']}, p99 {row['99%']}, max {float(row['Max Response Time']):.0f}\n"
        f"server CPU per request: {server_cpu / max(1, int(row['Request Count'])) * 1000:.0f} ms "
        f"({server_cpu:.1f} CPU-s used by gunicorn during the run)\n"
        f"backbone loads in the server: {model_loads} (one per worker process, during warm-up)"
    )
    if failures or locust.returncode not in (0, 1):
        print(f"FAILED: {failures} failed requests, locust exit {locust.returncode}; see {out}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
