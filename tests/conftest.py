import os
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

torch.set_num_threads(2)
# every CPU path on, as on any machine (not this machine's measured choice): the exactness
# tests then cover the same paths everywhere, ``--backend-off NAME`` each alternative, and
# tests/test_calibrate.py the measurement itself
os.environ.setdefault("WORKBENCH_CALIBRATE", "0")


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)  # a test that asks for one thread does not leave it so


def pytest_addoption(parser):
    parser.addoption(
        "--backend-off",
        default=None,
        help="run with this workbench.config switch turned off (e.g. ckernel, onednn)",
    )


@pytest.fixture(autouse=True, scope="session")
def _backend_off(request):
    """``--backend-off NAME``: the whole run under ``configure(NAME=False)``.

    A switch with an environment variable gets it too, so that processes the tests start
    (builds killed and resumed, fresh imports) run with the same switch off.
    """
    name = request.config.getoption("--backend-off")
    if not name:
        yield
        return
    import os

    from workbench.config import SWITCHES, configure

    var = SWITCHES[name][0]
    old = os.environ.get(var) if var else None
    if var:
        os.environ[var] = "0"
    try:
        with configure(**{name: False}):
            yield
    finally:
        if var and old is None:
            os.environ.pop(var, None)
        elif var:
            os.environ[var] = old


@pytest.fixture(scope="module")
def browser():
    """One headless Chromium per test module (:func:`browser.chromium`), for the browser tests."""
    from browser import chromium

    with chromium() as b:
        yield b
