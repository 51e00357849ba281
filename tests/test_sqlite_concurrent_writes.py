"""On the embedded SQLite database, two processes writing at once both succeed, one after the other.

With SQLite's defaults, a transaction that read before writing got "database is locked" at once when
another process wrote meanwhile: `retag` beside an admin save lost the merchant's edit.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

# Reads, waits while the other process reads too, then writes: the pattern of a tagging's transaction.
READ_THEN_WRITE = """
import time
from django.contrib.auth.models import Group
from django.db import transaction
with transaction.atomic():
    list(Group.objects.all())
    time.sleep(1.5)
    Group.objects.create(name="{name}")
print("saved")
"""


def test_two_processes_that_read_then_write_at_once_both_save(tmp_path):
    env = {k: v for k, v in os.environ.items() if not k.startswith(("DJANGO_", "DATABASE_URL", "REDIS_URL"))}
    env["VAR_DIR"] = str(tmp_path)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)

    writers = [
        subprocess.Popen(
            [*manage, "shell", "--no-imports", "-c", READ_THEN_WRITE.format(name=name)],
            cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
        )
        for name in ("first", "second")
    ]
    results = [writer.communicate(timeout=120) for writer in writers]

    for writer, (stdout, stderr) in zip(writers, results, strict=True):
        assert writer.returncode == 0, stderr
        assert "saved" in stdout
    count_groups = "from django.contrib.auth.models import Group; print(Group.objects.count())"
    count = subprocess.run(
        [*manage, "shell", "--no-imports", "-c", count_groups],
        cwd=ROOT, env=env, text=True, capture_output=True, check=True, timeout=120,
    )
    assert count.stdout.split()[-1] == "2"
