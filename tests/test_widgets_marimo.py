"""The widgets in marimo: the demo app runs as a script, and live (``marimo run``) a brush in
headless Chromium reaches Python, whose reactive cell shows the selection it computed."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import chromium, drag_brush, free_port, needs_chromium

import workbench
from workbench import viz

marimo = pytest.importorskip("marimo", reason="pip install -e '.[dev]' (marimo)")

ROOT = Path(__file__).parents[1]
APP = ROOT / "demos" / "marimo_states.py"
TEXT = "((a)(b(c)))(d)"  # the app's text


def _hidden():
    bundle = workbench.load("parens")
    ids, _ = bundle.encode([TEXT])
    return workbench.record(bundle.model, ids)["rnn.0.fwd.hidden"][0].numpy()


def test_marimo_app_runs_and_its_value_follows_the_widget():
    spec = importlib.util.spec_from_file_location("marimo_states", APP)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    _, defs = module.app.run()
    states = defs["states"]
    assert defs["selected"] == []
    states.widget.brush = [1, 5]
    want = viz.select_cells(_hidden(), 1, 5, threshold=0.3, pad=(1, 0)).tolist()
    assert want and states.widget.selected_cells == want
    assert list(states.value["selected_cells"]) == want


@pytest.fixture
def marimo_server():
    port = free_port()
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    cmd = [sys.executable, "-m", "marimo", "run", str(APP), "--headless", "--no-token",
           "--host", "127.0.0.1", "--port", str(port)]  # fmt: skip
    proc = subprocess.Popen(cmd, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.monotonic() + 120
        while True:
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    out = proc.stdout.read().decode(errors="replace") if proc.stdout else ""
                    pytest.fail(f"marimo run did not start: {out[-2000:]}")
                time.sleep(0.5)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()


@needs_chromium
def test_brush_in_live_marimo_reaches_python(marimo_server):
    v = _hidden()
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        outside = []
        page.on(
            "request", lambda r: None if r.url.startswith(marimo_server) else outside.append(r.url)
        )
        page.goto(marimo_server)
        page.wait_for_selector("canvas.wb-canvas", timeout=120_000)
        page.wait_for_function("() => document.body.innerText.includes('selected cells: []')")
        for a, b in ((1, 4), (6, 9)):
            drag_brush(page, len(v), a, b)
            want = viz.select_cells(v, a, b + 1, threshold=0.3, pad=(1, 0)).tolist()
            # the kernel recomputed the selection and the reactive cell shows Python's list
            page.wait_for_function(
                "w => document.body.innerText.includes(w)",
                arg=f"selected cells: {want}",
                timeout=60_000,
            )
    assert outside == [], f"marimo or the widget fetched outside resources: {outside}"
