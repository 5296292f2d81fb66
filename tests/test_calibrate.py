"""The CPU paths chosen by measurement: cache key, forcing, equal results on every path."""

import dataclasses
import json

import pytest
import torch
from torch import nn

import workbench
from workbench._native import calibrate, load
from workbench.config import configure, settings
from workbench.recorder import _gemm, backends


@pytest.fixture(autouse=True)
def _fresh():
    calibrate.forget()
    yield
    calibrate.forget()


def test_the_cache_key_changes_with_each_input():
    parts = calibrate.key_parts()
    assert set(parts) >= {"cpu", "cores", "torch", "build", "version"}
    key = calibrate.cache_key(parts)
    assert key == calibrate.cache_key(calibrate.key_parts())  # same machine: same key
    for name in parts:
        changed = {**parts, name: f"{parts[name]}-other"}
        assert calibrate.cache_key(changed) != key, name
    assert calibrate.cache_key(calibrate.key_parts(cpu="model name : other")) != key
    assert calibrate.cache_key(calibrate.key_parts(cores=parts["cores"] + 1)) != key
    assert calibrate.cache_file(parts).name == f"paths_{key}.json"


def _keep(tmp_path, **paths):
    """A cached choice in ``tmp_path``'s kernel folder, for this machine's key."""
    result = {
        "paths": calibrate.Paths(**{"threads": 1, **paths}),
        "ratios": {},
        "rounds": 0,
        "seconds": 0.0,
        "load": 0.0,
    }
    with configure(cache=tmp_path):
        parts = calibrate.key_parts()
        calibrate.write(calibrate.cache_file(parts), parts, result)
        return calibrate.cache_file(parts)


def test_a_cached_choice_is_used_and_a_switch_forces_a_path(tmp_path):
    path = _keep(tmp_path, onednn=False, hugepages=False)
    assert path.stat().st_mode & 0o077 == 0
    assert json.loads(path.read_text())["paths"]["onednn"] is False
    x, w = torch.randn(4, 8), torch.randn(16, 8)
    with configure(cache=tmp_path, calibrate=True):
        got = calibrate.chosen()
        assert (got.onednn, got.hugepages, got.ckernel) == (False, False, True)
        assert got.source == "cached"
        assert not _gemm.usable(x, w)  # the product path follows the choice
        with configure(onednn=True):  # forced on over the measured choice
            assert calibrate.chosen().onednn and calibrate.chosen().source == "forced"
            assert _gemm.usable(x, w) == _gemm._enabled()
        with configure(ckernel=False, threads=1):
            assert not calibrate.chosen().ckernel and calibrate.chosen().threads == 1
    with configure(calibrate=False):  # not measured: every path on (unless off), every core
        off = {k: False for k in ("onednn", "ckernel", "hugepages") if not getattr(settings(), k)}
        got = dataclasses.replace(calibrate.chosen(), source="-")
        assert got == calibrate.Paths(threads=load.cores(), source="-", **off)


class _Probe:
    """A backend that notes the team and paths it is run with, then declines."""

    name, strategy = "probe", "unroll"

    def __init__(self):
        self.seen = []

    def usable(self, call, needs_grad):
        return True

    def run(self, call, wanted, edits, how):
        self.seen.append((torch.get_num_threads(), how.paths))
        return None


def test_a_forced_team_and_path_reach_the_backends():
    lstm = nn.LSTM(4, 16).eval()
    probe = backends.register_backend(_Probe())
    before = torch.get_num_threads()
    try:
        with configure(threads=1, onednn=False):
            trace = workbench.record(lstm, torch.randn(5, 2, 4))
    finally:
        backends.unregister_backend("probe")
    assert len(probe.seen) == 1 and probe.seen[0][0] == 1
    assert probe.seen[0][1].onednn is False and probe.seen[0][1].threads == 1
    assert trace.meta["exactness"]["lstm"]["max_abs_error_hidden"] <= 1e-5  # unroll answered
    assert torch.get_num_threads() == before


def test_a_process_that_asked_for_one_thread_keeps_one():
    """The team never grows past torch's count: a forking process's children must not hang."""
    lstm = nn.LSTM(4, 16).eval()
    probe = backends.register_backend(_Probe())
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        workbench.record(lstm, torch.randn(5, 2, 4))
    finally:
        torch.set_num_threads(before)
        backends.unregister_backend("probe")
    assert [seen[0] for seen in probe.seen] == [1]


def test_the_free_cores_are_within_the_cores():
    assert 1 <= load.free_cores(samples=2) <= load.cores()
    with configure(threads=0):
        assert 1 <= calibrate.threads_now() <= calibrate.chosen().threads


def test_the_measurement_is_bounded_and_interleaved(tmp_path):
    calls = []

    def run():
        calls.append(calibrate.chosen())

    result = calibrate.measure(budget_s=0.0, rounds=5, run=run)
    n_cands = len(result["ratios"]) + 1  # and the baseline
    assert result["rounds"] == 2  # at least two rounds, however small the budget
    assert len(calls) == n_cands * 3  # a warm-up and two timed rounds of each candidate
    assert calls[n_cands] != calls[2 * n_cands]  # the order rotates between rounds
    assert {"onednn off", "ckernel off", "hugepages off"} <= set(result["ratios"])
    teams = {c.threads for c in calls}
    assert len(teams) == n_cands - 3  # the full team and each smaller one tried
    assert isinstance(result["paths"], calibrate.Paths) and result["paths"].threads >= 1


@pytest.mark.parametrize("mode", ["LSTM", "GRU"])
def test_every_path_records_the_same_states(mode):
    torch.manual_seed(0)
    module = getattr(nn, mode)(24, 32, 2).eval()
    big, few = torch.randn(6, 40, 24), torch.randn(7, 3, 24)  # per-step and few-row paths
    base = calibrate.Paths(threads=load.cores())
    variants = [base] + [
        dataclasses.replace(base, **{k: False}) for k in ("onednn", "ckernel", "hugepages")
    ]
    variants.append(dataclasses.replace(base, threads=1))
    for x in (big, few):
        with calibrate._as(base), torch.no_grad():
            ref = workbench.record(module, x, check="full")
        for paths in variants[1:]:
            with calibrate._as(paths), torch.no_grad():
                got = workbench.record(module, x, check="full")
            for name in ref.names:
                err = (ref[name] - got[name]).abs().max().item()
                assert err <= 1e-5, (paths, name, err)
            exact = got.meta["exactness"][next(iter(got.meta["exactness"]))]
            assert exact["max_abs_error_hidden"] <= 1e-5


@pytest.mark.parametrize(
    "env, first, expected",
    [({}, "workbench", "10000"), ({"GOMP_SPINCOUNT": "5"}, "workbench", "5"),
     ({}, "torch", None), ({"WORKBENCH_SPIN": "0"}, "workbench", None)],
)  # fmt: skip
def test_barrier_spins_are_bounded_before_torch_loads(env, first, expected):
    import os
    import subprocess
    import sys

    base = {k: v for k, v in os.environ.items() if k not in ("GOMP_SPINCOUNT", "OMP_WAIT_POLICY")}
    code = f"import {first}, workbench, os; print(os.environ.get('GOMP_SPINCOUNT'))"
    out = subprocess.run(
        [sys.executable, "-c", code], env={**base, **env}, capture_output=True, text=True
    )
    assert out.stdout.strip() == str(expected), out.stderr


@pytest.mark.skipif(load.cores() < 2, reason="one core is never shared by a team")
def test_a_busy_machine_is_not_measured(tmp_path):
    from workbench.bench.recorder import busy_processes

    with busy_processes(load.cores()), configure(cache=tmp_path, calibrate=True):
        got = calibrate.chosen()
        s = settings()
        switched = not (s.onednn and s.ckernel and s.hugepages)  # pytest --backend-off
        assert got.source == ("forced" if switched else "default, machine busy")
        assert (got.onednn, got.ckernel, got.hugepages, got.threads) == (
            s.onednn, s.ckernel, s.hugepages, load.cores(),
        )  # fmt: skip
    assert not list(tmp_path.rglob("paths_*.json"))  # nothing kept: a quiet process measures
