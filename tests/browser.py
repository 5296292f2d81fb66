"""Shared set-up of the headless-Chromium tests: Debian's chromium through Playwright.

Never a browser download: the system ``/usr/bin/chromium`` (``.ci/run`` installs it with apt)
is launched with the flags below; without it the browser tests skip with the fix.
"""

import shutil
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
