"""On the embedded SQLite database, two processes writing at once both succeed, one after the other.

With SQLite's defaults, a transaction that read before writing got "database is locked" at once when
another process wrote meanwhile: `retag` beside an admin save lost the merchant's edit.
"""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from tests.conftest import embedded_environment

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
    env = embedded_environment(tmp_path)
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


# Reads rows a page at a time and, after the first, writes while another process has committed: the
# pattern of `retag`, which stores each batch while it reads the photos to tag.
WRITE_WHILE_READING = """
import os, time
from pathlib import Path
from django.contrib.auth.models import Group
from django.db import transaction
from catalog.selectors import rows_by_key_pages
go, done = Path(os.environ["GO_FILE"]), Path(os.environ["DONE_FILE"])
read = 0
for pk, name in rows_by_key_pages(Group.objects.order_by("pk").values_list("pk", "name"), page=2):
    read += 1
    if read == 1:
        go.write_text("the other process may write now")
        while not done.exists():
            time.sleep(0.05)
        with transaction.atomic():
            Group.objects.create(name="written while reading")
print("read", read)
"""
WRITE_ONCE = """
import os, time
from pathlib import Path
from django.contrib.auth.models import Group
go, done = Path(os.environ["GO_FILE"]), Path(os.environ["DONE_FILE"])
while not go.exists():
    time.sleep(0.05)
Group.objects.create(name="the other process")
done.write_text("committed")
"""


def test_a_process_reading_by_pages_can_write_after_another_process_committed(tmp_path):
    env = embedded_environment(tmp_path)
    manage = [sys.executable, "manage.py"]
    subprocess.run([*manage, "migrate", "--noinput", "-v0"], cwd=ROOT, env=env, check=True, timeout=300)
    make_groups = "from django.contrib.auth.models import Group\nfor i in range(5): Group.objects.create(name=f'g{i}')"
    subprocess.run([*manage, "shell", "--no-imports", "-c", make_groups], cwd=ROOT, env=env, check=True, timeout=120)
    env |= {"GO_FILE": str(tmp_path / "go"), "DONE_FILE": str(tmp_path / "done")}

    reader = subprocess.Popen(
        [*manage, "shell", "--no-imports", "-c", WRITE_WHILE_READING],
        cwd=ROOT, env=env, text=True, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        writer = subprocess.run(
            [*manage, "shell", "--no-imports", "-c", WRITE_ONCE],
            cwd=ROOT, env=env, text=True, capture_output=True, timeout=120,
        )
        assert writer.returncode == 0, writer.stderr  # else the reader would wait for it in vain
        stdout, stderr = reader.communicate(timeout=120)
    finally:
        if reader.poll() is None:
            reader.kill()

    assert reader.returncode == 0, stderr
    # every row: the five groups, the other process's and its own, both committed before the pages after
    assert "read 7" in stdout
