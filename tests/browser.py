"""Shared set-up of the headless-Chromium tests: Debian's chromium through Playwright.

Never a browser download: the system ``/usr/bin/chromium`` (``.ci/run`` installs it with apt)
is launched with the flags below; without it the browser tests skip with the fix.
"""

import contextlib
import shutil
import threading
from pathlib import Path

import pytest

CHROMIUM = next(
    (p for p in ("/usr/bin/chromium", shutil.which("chromium") or "") if p and Path(p).exists()),
    None,
)
ARGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--no-first-run",
    "--disable-background-networking", "--disable-component-update", "--disable-sync",
]  # fmt: skip
needs_chromium = pytest.mark.skipif(
    CHROMIUM is None, reason="system chromium not installed (apt-get install -y chromium)"
)


def playwright_api():
    """``playwright.sync_api`` (skips the calling test module when Playwright is missing)."""
    return pytest.importorskip("playwright.sync_api", reason="pip install playwright")


#: How long a browser test waits for the page before failing (ms): a hang guard, not a speed
#: check; generous, since a first callback may compile kernels on a loaded 2-core machine.
TIMEOUT = 120_000


@contextlib.contextmanager
def served(app):
    """Serve a Dash ``app`` on a free loopback port in a thread; yields its base URL."""
    from werkzeug.serving import make_server

    srv = make_server("127.0.0.1", 0, app.server, threaded=True)
    thread = threading.Thread(target=srv.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.shutdown()
        thread.join(5)


@contextlib.contextmanager
def chromium():
    """The system Chromium, headless with :data:`ARGS`, through Playwright."""
    with playwright_api().sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS)
        try:
            yield browser
        finally:
            browser.close()


def free_port() -> int:
    """A free TCP port on 127.0.0.1 (for a server a test starts)."""
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def drag_brush(page, window: int, a: int, b: int) -> None:
    """Drag across a TrajectoryWidget's canvas from step ``a`` to step ``b`` (``window`` steps).

    The canvas keeps 50 px left and 10 px right of the plot; the drag runs 120 px down.
    """
    box = page.locator("canvas.wb-canvas").bounding_box()
    dx = (box["width"] - 50 - 10) / window
    y = box["y"] + 120
    x0, x1 = (box["x"] + 50 + (s + 0.5) * dx for s in (a, b))
    page.mouse.move(x0, y)
    page.mouse.down()
    page.mouse.move((x0 + x1) / 2, y)
    page.mouse.move(x1, y)
    page.mouse.up()
