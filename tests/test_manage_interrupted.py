"""`manage.py` stopped with Ctrl-C says so in a line and exits 130, instead of printing a traceback."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

from tests.conftest import embedded_environment

ROOT = Path(__file__).resolve().parent.parent


def test_a_command_stopped_with_ctrl_c_prints_one_line_and_no_traceback(tmp_path):
    # given: a command at work (here a shell command that waits), on a throw-away SQLite database
    env = embedded_environment(tmp_path)
    code = "print('working', flush=True); import time; time.sleep(60)"
    command = subprocess.Popen(
        [sys.executable, "manage.py", "shell", "--no-imports", "-c", code], cwd=ROOT, env=env, text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    try:
        while (line := command.stdout.readline()) and line.strip() != "working":
            pass  # what the shell prints first
        assert line.strip() == "working"
        # when: the user presses Ctrl-C
        command.send_signal(signal.SIGINT)
        _, stderr = command.communicate(timeout=30)
    finally:
        if command.poll() is None:
            command.kill()
    # then
    assert command.returncode == 130
    assert stderr.strip() == "interrupted"
    assert "Traceback" not in stderr
