"""What a benchmark ran on: CPU, cores, memory, GPU, load and library versions, as one markdown line.

Imported by the bench scripts (run from the repository root, `bench/` on sys.path).
"""

from __future__ import annotations

import os
import platform
import statistics
import time
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path

LIBRARIES = ("torch", "onnxruntime", "faiss-cpu", "numpy", "pillow", "django", "gunicorn")


def cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown CPU"


def memory_gib() -> float:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return int(line.split()[1]) / 1024 / 1024
    return 0.0


def gpu_name() -> str | None:
    if not Path("/dev/nvidiactl").exists():
        return None
    import torch

    return torch.cuda.get_device_name(0) if torch.cuda.is_available() else None


def library_versions(names: tuple[str, ...] = LIBRARIES) -> str:
    found = []
    for name in names:
        try:
            found.append(f"{name} {version(name)}")
        except PackageNotFoundError:
            continue
    return ", ".join(found)


def machine_line() -> str:
    """One line: date, CPU, cores, memory, GPU, load average now, Python and library versions."""
    load = " ".join(f"{x:.1f}" for x in os.getloadavg())
    gpu = gpu_name() or "no GPU"
    return (
        f"{time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}; {os.cpu_count()} cores ({cpu_model()}), "
        f"{memory_gib():.0f} GiB, {gpu}; load average {load} at the start; Python {platform.python_version()}; "
        f"{library_versions()}"
    )


def percentile(values: list[float], q: float) -> float:
    """The q-th percentile (0-100) by linear interpolation, as numpy's default."""
    ordered = sorted(values)
    if not ordered:
        return float("nan")
    position = (len(ordered) - 1) * q / 100
    low = int(position)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (position - low)


def median(values: list[float]) -> float:
    return statistics.median(values) if values else float("nan")


def table(header: list[str], rows: list[list[object]]) -> str:
    """A markdown table; numbers right-aligned."""
    align = ["---" if i == 0 else "---:" for i in range(len(header))]
    lines = ["| " + " | ".join(header) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(str(cell) for cell in row) + " |" for row in rows]
    return "\n".join(lines)
