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
