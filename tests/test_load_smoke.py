"""Smoke run of demos/load_test.py: waitress on loopback, 4 clients for 3 s, zero errors.

The full run (``python demos/load_test.py --clients 50 --seconds 60``) is not part of the
test suite; its figures are in the README.
"""

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).parents[1]


def test_load_smoke(tmp_path):
    pytest.importorskip("waitress", reason="pip install waitress")
    out = tmp_path / "load.json"
    cmd = [sys.executable, str(ROOT / "demos" / "load_test.py"), "--clients", "4",
           "--seconds", "3", "--json", str(out), "--small",
           "--cache", str(tmp_path / "c")]  # fmt: skip
    res = subprocess.run(cmd, capture_output=True, text=True, timeout=300, cwd=ROOT)
    assert res.returncode == 0, res.stdout[-3000:] + res.stderr[-3000:]
    figures = json.loads(out.read_text())
    assert figures["errors"] == 0 and figures["requests"] > 0
    assert {r["callback"] for r in figures["rows"]} >= {"explain", "match"}
    assert all(r["requests"] > 0 for r in figures["rows"])
