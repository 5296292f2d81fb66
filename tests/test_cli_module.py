"""``python -m workbench`` runs the same command line as the console script."""

import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _run(*args):
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    return subprocess.run(
        [sys.executable, "-m", "workbench", *args],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=120,
    )  # fmt: skip


def test_python_dash_m_lists_the_commands():
    done = _run("--help")
    assert done.returncode == 0, done.stderr
    for command in ("demo", "serve", "record", "explain", "report", "bench"):
        assert command in done.stdout


def test_python_dash_m_user_error_is_one_line():
    done = _run("explain", "-m", "no-such-model-folder/", "-i", "x")
    assert done.returncode == 1
    assert "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1
