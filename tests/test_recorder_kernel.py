"""The compiled LSTM step of the CPU unroll, and the huge-page buffers it writes into.

The unroll computes a step's element-wise part (gate activations, cell, hidden) in one C call
(``workbench/_native/ckernel.py``) and its input projection a few steps at a time. These tests
pin it against the float64 reference from the equations at sizes where the projection really is
split into blocks (forward and reverse, packed, projections, initial states, hidden edits), and
against the PyTorch-ops path, and check that without a compiler everything still works.
"""

import os
import subprocess
import sys

import numpy as np
import pytest
import torch
from reference import run as reference
from torch import nn

import workbench
from workbench._native import ckernel as _ckernel
from workbench._native import pages as _pages
from workbench.recorder import _rnn

DIRS = ("fwd", "bwd")
needs_kernel = pytest.mark.skipif(_ckernel.load() is None, reason="no C compiler here")


def _case(bidirectional=False, proj=0, packed=False, init=False, hidden=40, batch=8, time=37):
    torch.manual_seed(hidden + batch + time + proj + 7 * bidirectional)
    kw = {"proj_size": proj} if proj else {}
    m = nn.LSTM(6, hidden, 2, bidirectional=bidirectional, **kw).eval()
    x = torch.randn(batch, time, 6) * 2
    D = 2 if bidirectional else 1
    h0 = torch.randn(2 * D, batch, proj or hidden) if init else None
    c0 = torch.randn(2 * D, batch, hidden) if init else None
    lengths = [time - (3 * b) % time for b in range(batch)] if packed else None
    inp = x.transpose(0, 1)
    if packed:
        inp = nn.utils.rnn.pack_padded_sequence(inp, torch.tensor(lengths), enforce_sorted=False)
    args = (inp,) if not init else (inp, (h0, c0))
    return m, x, h0, c0, lengths, args


@needs_kernel
@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"bidirectional": True},
        {"packed": True},
        {"packed": True, "bidirectional": True, "init": True},
        {"proj": 13, "init": True},
        {"hidden": 130, "batch": 64, "time": 9},  # big enough for the OpenMP team
        # a few rows and units in 16s: the whole-sequence kernel and the compiled product
        {"hidden": 32, "batch": 3},
        {"hidden": 48, "batch": 2, "bidirectional": True, "init": True},
        {"hidden": 32, "batch": 3, "packed": True, "bidirectional": True},
        {"hidden": 32, "batch": 4, "proj": 13, "init": True},
        {"hidden": 256, "batch": 1, "time": 20},  # two threads split the unit blocks
    ],
    ids=[
        "plain", "bidirectional", "packed", "packed-bi-init", "projection", "threads",
        "seq", "seq-bi-init", "small-packed-bi", "small-projection", "seq-threads",
    ],
)  # fmt: skip
def test_compiled_step_matches_reference_across_blocks(kw, monkeypatch):
    monkeypatch.setattr(_rnn, "_CHUNK_BYTES", 4 * 4 * 40 * 8 * 5)  # 5 steps a block at 8 x 40
    m, x, h0, c0, lengths, args = _case(**kw)
    trace = workbench.record(m, *args, strategy="unroll", check="full")
    ref = reference(m, x.numpy(), lengths, *(None if v is None else v.numpy() for v in (h0, c0)))
    T = max(lengths) if lengths else x.shape[1]
    for (layer, d, q), v in ((k, v) for k, v in ref.items() if k != "output"):
        got = trace[f"lstm.{layer}.{DIRS[d]}.{q}"].double().numpy()
        np.testing.assert_allclose(got, v[:, :T], atol=1e-5, rtol=0)
    assert trace.meta["exactness"]["lstm"]["max_abs_error_hidden"] <= 1e-5
    assert trace.meta["exactness"]["lstm"]["max_abs_error_cell"] <= 1e-5


@needs_kernel
def test_compiled_step_agrees_with_pytorch_ops_and_is_used(monkeypatch):
    m, x, *_ = _case(bidirectional=True, hidden=64, batch=5, time=50)
    inp = x.transpose(0, 1)
    calls = []
    real = _ckernel.lstm_step_fn

    def counting():
        lib = real()
        calls.append(lib)
        return lib

    monkeypatch.setattr(_ckernel, "lstm_step_fn", counting)
    fused = workbench.record(m, inp, strategy="unroll")
    assert calls and all(c is not None for c in calls)
    with _ckernel.disabled():
        assert _ckernel.lstm_step_fn() is None
        ops = workbench.record(m, inp, strategy="unroll")
    assert _ckernel.lstm_step_fn() is not None  # the block restores it
    for name in fused.names:
        assert (fused[name] - ops[name]).abs().max().item() <= 2e-6, name


@needs_kernel
def test_saturated_and_nonfinite_inputs_behave_like_pytorch():
    m = nn.LSTM(3, 5).eval()
    x = torch.tensor([[[300.0, -300.0, 0.0]], [[-1e30, 1e30, 5.0]], [[0.1, 0.2, 0.3]]])
    fused = workbench.record(m, x, strategy="unroll", check="none")
    with _ckernel.disabled():
        ops = workbench.record(m, x, strategy="unroll", check="none")
    for name in fused.names:
        assert (fused[name] - ops[name]).abs().max().item() <= 1e-6, name
    x[1, 0, 0] = float("nan")
    fused = workbench.record(m, x, strategy="unroll", check="none")
    assert torch.isnan(fused["lstm.0.fwd.hidden"][0, 1:]).all()  # NaN carries on, as in PyTorch


@needs_kernel
@pytest.mark.parametrize("hidden", [6, 32])  # 32 x 3 rows: the whole-sequence kernel's product
@pytest.mark.parametrize("name", ["forget_gate", "cell_input", "cell", "hidden"])
def test_edited_runs_match_the_unedited_run_bit_for_bit_before_the_edit(name, hidden):
    m = nn.LSTM(4, hidden, 2).eval()
    x = torch.randn(12, 3, 4)
    assert _rnn._compiled(x) is not None and _rnn._compiled(x.double()) is None

    def zero_units(v, t):
        v = v.clone()
        if t >= 4:
            v[..., [1, 3]] = 0
        return v

    plain = workbench.record(m, x)
    edited = workbench.intervene(m, x, edits={f"lstm.0.fwd.{name}": zero_units})
    with _ckernel.disabled():
        ops = workbench.intervene(m, x, edits={f"lstm.0.fwd.{name}": zero_units})
    for q in plain.names:
        assert torch.equal(edited[q][:, :4], plain[q][:, :4]), q  # same arithmetic
        assert (edited[q] - ops[q]).abs().max().item() <= 2e-6, q
    assert edited[f"lstm.0.fwd.{name}"][:, 4:, [1, 3]].abs().max().item() == 0
    assert (edited.output[0] - plain.output[0]).abs().max().item() > 1e-4  # the edit acted


def test_without_a_compiler_the_recorder_still_works(tmp_path):
    code = (
        "import torch, workbench\n"
        "from workbench._native import ckernel as _ckernel\n"
        "m = torch.nn.LSTM(3, 4).eval()\n"
        "tr = workbench.record(m, torch.randn(5, 2, 3), check='full')\n"
        "assert _ckernel.load() is None, 'kernel loaded'\n"
        "assert 'failed' in _ckernel._STATE['error'], _ckernel._STATE['error']\n"
        "print(tr.meta['exactness']['lstm']['max_abs_error_hidden'])\n"
    )
    env = {**os.environ, "CC": "false", "WORKBENCH_CACHE": str(tmp_path), "WORKBENCH_CKERNEL": "1"}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert float(out.stdout) <= 1e-5
    assert not list((tmp_path / "kernels").glob("*.so"))  # nothing half-built left behind


def test_kernel_cache_is_keyed_and_reused(tmp_path):
    code = (
        "from workbench._native import ckernel as _ckernel\n"
        "import sys\n"
        "sys.exit(0 if _ckernel.load() is not None else 3)\n"
    )
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path), "WORKBENCH_CKERNEL": "1"}
    first = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    if first.returncode == 3:
        pytest.skip("no C compiler here")
    assert first.returncode == 0, first.stderr
    built = list((tmp_path / "kernels").glob("wb_lstm_*.so"))
    assert len(built) == 1
    stamp = built[0].stat().st_mtime_ns
    env["CC"] = "false"  # a second process loads the cached library, compiles nothing
    second = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert second.returncode == 0, second.stderr
    assert built[0].stat().st_mtime_ns == stamp


@pytest.mark.skipif(os.uname().machine != "x86_64", reason="x86-64 target names")
def test_the_build_target_is_chosen_by_an_environment_switch(tmp_path, monkeypatch):
    """``WORKBENCH_CKERNEL_MARCH`` picks ``-march`` (a build of its own); a bad value: no kernel."""
    code = (
        "import torch, workbench\n"
        "from workbench._native import ckernel as _ckernel\n"
        "m = torch.nn.LSTM(3, 32).eval()\n"
        "tr = workbench.record(m, torch.randn(9, 2, 3), check='full')\n"
        "print(_ckernel.load() is not None, _ckernel._STATE['error'])\n"
        "print(tr.meta['exactness']['lstm']['max_abs_error_hidden'])\n"
    )

    def run(march):
        env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path), "WORKBENCH_CKERNEL": "1"}
        env["WORKBENCH_CKERNEL_MARCH"] = march
        out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    loaded, err = run("x86-64")
    if loaded.startswith("False") and "failed" in loaded:
        pytest.skip("no C compiler here")
    assert loaded == "True None" and float(err) <= 1e-5
    assert len(list((tmp_path / "kernels").glob("wb_lstm_*.so"))) == 1
    monkeypatch.setenv("WORKBENCH_CKERNEL_MARCH", "x86-64")
    generic = _ckernel._flags()
    monkeypatch.delenv("WORKBENCH_CKERNEL_MARCH")
    assert "-march=x86-64" in generic and "-march=native" in _ckernel._flags()  # keyed apart
    bad, err = run("x86-64; rm -rf ~")
    assert bad.startswith("False") and "not a -march value" in bad and float(err) <= 1e-5


@needs_kernel
def test_a_library_others_could_write_is_not_loaded(tmp_path):
    kernels = tmp_path / "kernels"
    kernels.mkdir()
    kernels.chmod(0o777)
    code = (
        "import torch, workbench\n"
        "from workbench._native import ckernel as _ckernel\n"
        "tr = workbench.record(torch.nn.LSTM(3, 4).eval(), torch.randn(5, 2, 3))\n"
        "assert _ckernel.load() is None\n"
        "print(_ckernel._STATE['error'])\n"
    )
    env = {**os.environ, "WORKBENCH_CACHE": str(tmp_path)}
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True)
    assert out.returncode == 0, out.stderr
    assert "writable by others" in out.stdout


def test_huge_page_buffers_are_ordinary_tensors():
    like = torch.zeros(1)
    z = _pages.empty(300, 64, 130, like=like, zero=True)  # ~10 MB: advised and touched
    assert z.shape == (300, 64, 130) and z.dtype == like.dtype and z.is_contiguous()
    assert z.abs().max().item() == 0
    e = _pages.empty(300, 64, 130, like=like)
    e.fill_(2.5)
    assert e.sum().item() == 2.5 * e.numel()
    small = _pages.empty(3, 4, like=like.double(), zero=True)
    assert small.dtype == torch.float64 and small.abs().max().item() == 0


def test_kept_values_follow_the_very_tensors_they_were_made_from():
    from workbench.recorder._kept import KeptWhileAlive

    kept = KeptWhileAlive(2)
    a, b = torch.zeros(3), torch.zeros(3)
    kept.put("k", (a, None), "value")
    assert kept.get("k", (a, None)) == "value"
    assert kept.get("k", (b, None)) is None  # another tensor under the same key: dropped
    assert kept.get("k", (a, None)) is None
    kept.put("k", (a,), 1)
    del a  # the tensor is gone: so is what was made from it (a dead reference is no None)
    assert kept.get("k", (None,)) is None
    for i in range(3):
        kept.put(i, (b,), i)
    assert len(kept) == 2 and kept.get(0, (b,)) is None and kept.get(2, (b,)) == 2


def test_huge_pages_back_off_after_a_slow_touch(monkeypatch):
    """A cold huge-page touch (slower per MB than the bound) turns huge pages off for a while;
    buffers stay correct on either path, and a forced WORKBENCH_HUGEPAGES=1 never backs off."""
    mb = 2**20
    assert not _pages.slow_touch(64 * mb, 0.17e-3 * 64)  # warm huge pages
    assert not _pages.slow_touch(64 * mb, 0.8e-3 * 64)  # 4 KiB pages under load
    assert _pages.slow_touch(64 * mb, 9e-3 * 64)  # fresh host memory
    assert not _pages.slow_touch(1 * mb, 1.0)  # too small to time
    like = torch.empty(1)
    monkeypatch.setitem(_pages._STATE, "off_until", 0.0)
    monkeypatch.setattr(_pages, "SLOW_S_PER_MB", 0.0)  # every timed touch counts as slow
    z = _pages.empty(64, 64, 1024, like=like, zero=True)  # 16 MB: advised, timed
    assert torch.count_nonzero(z) == 0
    if _pages._madvise() is False and not _pages.backed_off():
        return  # no huge pages on this machine (or switched off): nothing to back off from
    assert _pages.backed_off()
    again = _pages.empty(64, 64, 1024, like=like, zero=True)  # small pages now, still zeroed
    assert torch.count_nonzero(again) == 0 and again.shape == (64, 64, 1024)
