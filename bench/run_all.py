"""Run the benchmarks and write their tables into bench/README.md (`make bench`).

    .venv/bin/python bench/run_all.py [--only embed,input,index,http,tagging,retag,memory] [--no-write]

Each benchmark runs in its own process, with a time limit, and prints markdown. Its output replaces
the block between `<!-- bench:NAME -->` and `<!-- /bench:NAME -->` in bench/README.md, so the prose
around the tables (what they show, what was chosen and why) stays as written. The load benchmark
(`make bench-load`) is separate: it needs PostgreSQL and runs for minutes on its own.
"""

from __future__ import annotations

import argparse
import re
import subprocess
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
README = ROOT / "bench" / "README.md"
# Lines that libraries print to stdout and that say nothing about the results.
NOISE = ("Loaded pretrained weights", "created database")

# name: (script, arguments, time limit in seconds, README heading for a block not there yet)
BENCHMARKS: dict[str, tuple[str, list[str], int, str]] = {
    "embed": ("embed_throughput.py", [], 1200, "Embedding throughput"),
    "input": ("input_size.py", [], 1200, "What a smaller input would buy"),
    "index": ("index_search.py", [], 2700, "Vector search"),
    "http": ("http_search.py", [], 1500, "Upload to results over HTTP"),
    "tagging": ("tagging_index.py", [], 900, "Tagging into a large catalog"),
    "retag": ("retag_throughput.py", [], 900, "Bulk tagging"),
    "memory": ("memory.py", [], 900, "Memory"),
}


def run(name: str) -> str:
    script, arguments, limit, _ = BENCHMARKS[name]
    print(f"== {name}: bench/{script} (at most {limit // 60} min)", flush=True)
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, str(ROOT / "bench" / script), *arguments], cwd=ROOT,
                               stdout=subprocess.PIPE, text=True)
    lines = []
    try:
        assert process.stdout is not None
        for line in process.stdout:
            print(line, end="", flush=True)
            if not line.startswith(NOISE):
                lines.append(line)
        process.wait(timeout=limit)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
        lines.append(f"\n(stopped after {limit} s)\n")
    if process.returncode:
        lines.append(f"\n(bench/{script} exited with {process.returncode})\n")
    print(f"== {name} took {time.perf_counter() - started:.0f}s", flush=True)
    return "".join(lines).strip()


def readme_update(name: str, output: str) -> None:
    text = README.read_text()
    block = f"<!-- bench:{name} -->\n{output}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{name} -->.*?<!-- /bench:{name} -->", re.DOTALL)
    if pattern.search(text):
        text = pattern.sub(lambda _: block, text)
    else:
        script, _, _, heading = BENCHMARKS[name]
        text = text.rstrip() + f"\n\n## {heading}\n\n`make bench` (bench/{script})\n\n{block}\n"
    README.write_text(text)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(BENCHMARKS), help="comma-separated: " + ", ".join(BENCHMARKS))
    parser.add_argument("--no-write", action="store_true", help="print only; leave bench/README.md alone")
    args = parser.parse_args(argv)
    names = [n.strip() for n in args.only.split(",") if n.strip()]
    unknown = set(names) - set(BENCHMARKS)
    if unknown:
        parser.error(f"unknown benchmark(s): {', '.join(sorted(unknown))}")
    for name in names:
        output = run(name)
        if not args.no_write:
            readme_update(name, output)
    return 0


if __name__ == "__main__":
    sys.exit(main())
