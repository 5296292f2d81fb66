import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).parent))

torch.set_num_threads(2)


@pytest.fixture(autouse=True)
def _seed():
    torch.manual_seed(0)


def pytest_addoption(parser):
    parser.addoption(
        "--backend-off",
        default=None,
        help="run with this workbench.config switch turned off (e.g. ckernel, onednn)",
    )


@pytest.fixture(autouse=True, scope="session")
def _backend_off(request):
    """``--backend-off NAME``: the whole run under ``configure(NAME=False)``."""
    name = request.config.getoption("--backend-off")
    if not name:
        yield
        return
    from workbench.config import configure

    with configure(**{name: False}):
        yield
