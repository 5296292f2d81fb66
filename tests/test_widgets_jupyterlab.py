"""The States widget in a live JupyterLab: headless Chromium runs a notebook, brushes steps in
the TrajectoryWidget, and the kernel's Python sees the selection (written by an observer)."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

import pytest
from browser import TIMEOUT, chromium, drag_brush, free_port, needs_chromium

import workbench
from workbench import viz

pytest.importorskip("jupyterlab", reason="pip install -e '.[dev]' (jupyterlab)")
nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[dev]' (nbformat)")
pytestmark = needs_chromium

ROOT = Path(__file__).parents[1]
TEXT = "((a)(b(c)))(d)"
CELL = f"""import json, pathlib
import workbench
bundle = workbench.load("parens")
ids, _ = bundle.encode([{TEXT!r}])
trace = workbench.record(bundle.model, ids)
trace.tokens = [bundle.tokenize({TEXT!r})]
w = workbench.show(trace, name="rnn.0.fwd.hidden", threshold=0.3)
seen = pathlib.Path("selection.json")
w.observe(lambda change: seen.write_text(json.dumps(change["new"])), "selected_cells")
w"""


@pytest.fixture
def lab(tmp_path):
    """A JupyterLab on 127.0.0.1 serving ``tmp_path/root`` (no token; its own config dirs)."""
    root = tmp_path / "root"
    root.mkdir()
    book = nbformat.v4.new_notebook(cells=[nbformat.v4.new_code_cell(CELL)])
    book.metadata["kernelspec"] = {"name": "python3", "display_name": "Python 3"}
    nbformat.write(book, root / "states.ipynb")
    port = free_port()
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JUPYTER_RUNTIME_DIR": str(tmp_path / "runtime"),
        "JUPYTER_CONFIG_DIR": str(tmp_path / "config"),
        "JUPYTERLAB_SETTINGS_DIR": str(tmp_path / "settings"),
        "JUPYTERLAB_WORKSPACES_DIR": str(tmp_path / "workspaces"),
    }
    cmd = [sys.executable, "-m", "jupyterlab", "--no-browser", "--allow-root",
           f"--port={port}", "--ServerApp.ip=127.0.0.1", "--IdentityProvider.token=",
           "--ServerApp.password=", f"--ServerApp.root_dir={root}", "--LabApp.news_url=None",
           "--LabApp.check_for_updates_class=jupyterlab.NeverCheckForUpdate"]  # fmt: skip
    log = (tmp_path / "lab.log").open("wb")
    proc = subprocess.Popen(cmd, env=env, cwd=root, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 180
        while True:
            try:
                with urllib.request.urlopen(url + "/lab", timeout=5):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"jupyter lab did not start: {(tmp_path / 'lab.log').read_text()}")
                time.sleep(0.5)
        yield url, root
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _dismiss_dialogs(page) -> None:
    """JupyterLab's "build recommended" prompt (dash ships a classic lab extension)."""
    for _ in range(3):
        dialog = page.locator(".jp-Dialog")
        if not dialog.count():
            return
        dialog.locator("button", has_text="Cancel").first.click()
        page.wait_for_timeout(300)


def _seen(path: Path, want: list[int], timeout: float = 60) -> list[int] | None:
    """What the kernel's observer wrote last, once it equals ``want`` or at the timeout."""
    deadline, got = time.monotonic() + timeout, None
    while time.monotonic() < deadline:
        try:
            got = json.loads(path.read_text())
        except (OSError, ValueError):  # not written yet, or being written
            got = None
        if got == want:
            break
        time.sleep(0.2)
    return got


def _run_cell(page) -> None:
    """Run the notebook's cell (retried: a late dialog can swallow the first click)."""
    for _ in range(3):
        page.wait_for_timeout(1000)
        _dismiss_dialogs(page)
        # a loaded lab can still cover the notebook with its spinner (seen on a busy machine)
        page.wait_for_selector(".jp-Spinner", state="hidden", timeout=TIMEOUT)
        page.click(".jp-Cell .jp-InputArea-editor")
        page.keyboard.press("Shift+Enter")
        try:
            page.wait_for_selector("canvas.wb-canvas", timeout=90_000)
        except Exception:  # playwright's TimeoutError
            continue
        page.wait_for_timeout(500)
        _dismiss_dialogs(page)
        return
    pytest.fail("the notebook cell never showed the widget")


def test_brush_in_live_jupyterlab_reaches_the_kernel(lab):
    url, root = lab
    bundle = workbench.load("parens")
    ids, _ = bundle.encode([TEXT])
    v = workbench.record(bundle.model, ids)["rnn.0.fwd.hidden"][0].numpy()
    seen = root / "selection.json"
    with chromium() as browser:
        page = browser.new_page(viewport={"width": 1400, "height": 900})
        outside = []
        local = (url, "blob:" + url, "data:")
        page.on("request", lambda r: None if r.url.startswith(local) else outside.append(r.url))
        page.goto(url + "/lab/tree/states.ipynb")
        page.wait_for_selector(".jp-Notebook .jp-Cell", timeout=180_000)
        page.wait_for_selector(
            ".jp-Notebook-ExecutionIndicator[data-status='idle']", timeout=180_000
        )
        _run_cell(page)
        for a, b in ((1, 4), (6, 9)):
            seen.unlink(missing_ok=True)
            drag_brush(page, len(v), a, b)
            want = viz.select_cells(v, a, b + 1, threshold=0.3, pad=(1, 0)).tolist()
            assert _seen(seen, want) == want
    assert outside == [], f"JupyterLab or the widget fetched outside resources: {outside}"
