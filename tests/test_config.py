"""One config object for every WORKBENCH_* switch, set through a public context manager."""

import os
import subprocess
import sys

import pytest
import torch
from torch import nn

import workbench
from workbench.config import SWITCHES, backends_off, configure, reload, settings


def test_switches_nest_and_restore():
    before = settings()
    with configure(ckernel=False) as inner:
        assert inner.ckernel is False and settings().ckernel is False
        with configure(onednn=False):
            assert not settings().ckernel and not settings().onednn
        assert settings().onednn is before.onednn
    assert settings() == before
    with pytest.raises(TypeError, match="unknown setting"):
        with configure(ckernal=False):
            pass
    assert [next(iter(c)) for c in backends_off()] == [k for k, (_, d) in SWITCHES.items() if d]


def test_the_environment_is_read_and_configure_wins(monkeypatch, tmp_path):
    monkeypatch.setenv("WORKBENCH_ONEDNN", "0")
    monkeypatch.setenv("WORKBENCH_CACHE", str(tmp_path))
    assert settings().cache == tmp_path  # paths: read when asked
    assert reload().onednn is False and settings().onednn is False  # switches: on reload
    with configure(onednn=True, cache=tmp_path / "c"):
        assert settings().onednn is True and settings().cache == tmp_path / "c"
    assert settings().onednn is False and settings().cache == tmp_path
    monkeypatch.delenv("WORKBENCH_ONEDNN")
    assert reload().onednn is True


@pytest.mark.parametrize("off", [c for c in backends_off()], ids=lambda c: next(iter(c)))
def test_recording_is_exact_with_each_backend_off(off):
    torch.manual_seed(0)
    lstm = nn.LSTM(5, 32, 2, batch_first=True).eval()
    x = torch.randn(3, 9, 5)
    with torch.no_grad():
        ref = workbench.record(lstm, x, check="full")
        with configure(**off):
            got = workbench.record(lstm, x, check="full")
    for name in ref.names:
        assert (ref[name] - got[name]).abs().max().item() <= 1e-5, name
    assert got.meta["exactness"]["lstm"]["max_abs_error_hidden"] <= 1e-5


def test_the_kernel_switch_is_seen_by_the_unroll():
    from workbench._native import ckernel
    from workbench.recorder import _rnn

    x = torch.zeros(2, 3)
    with configure(ckernel=False):
        assert ckernel.load() is None and _rnn._compiled(x) is None


def test_debug_switch_reaches_the_cli(tmp_path):
    env = {**os.environ, "WORKBENCH_DEBUG": "1"}
    code = "from workbench.config import settings; assert settings().debug"
    subprocess.run([sys.executable, "-c", code], env=env, check=True, cwd=tmp_path)


def test_the_backend_off_option_is_in_force(request):
    """``pytest --backend-off NAME`` runs every test with that switch off."""
    name = request.config.getoption("--backend-off")
    if name:
        assert getattr(settings(), name) is False
    else:
        assert settings() == reload()
