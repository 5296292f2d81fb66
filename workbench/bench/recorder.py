"""``workbench bench record``: recording cost as a ratio to the plain forward pass."""

from __future__ import annotations

import contextlib
import statistics
import time
import warnings
from dataclasses import dataclass

import torch
from torch import nn

from workbench._native import ckernel as _ckernel
from workbench.bench._timing import median_seconds as _time
from workbench.recorder._recorder import record


@dataclass
class BenchRow:
    """One benchmark case: plain forward vs recording, same model, input and process."""

    case: str
    plain_s: float
    record_s: float
    ratio: float
    max_abs_error: float | None


def bench_case(
    case: str,
    module: nn.Module,
    x: torch.Tensor,
    repeats: int = 5,
    native_baseline: bool = False,
    compiled_step: bool = True,
    **record_kwargs,
) -> BenchRow:
    """Median time of the plain forward and of ``record`` on the same input, interleaved.

    Parameters
    ----------
    module : nn.Module
        The recurrent module (in eval mode).
    x : torch.Tensor
        ``[time, batch, feature]`` input.
    native_baseline : bool
        Time the plain forward with oneDNN off (PyTorch's own CPU kernel) instead of the
        default, which on CPUs with AVX-512 runs nn.LSTM through oneDNN about 2.3x faster.
    compiled_step : bool
        False: record with PyTorch's element-wise ops instead of the compiled LSTM step.
    """
    sync = torch.cuda.synchronize if x.is_cuda else (lambda: None)

    def plain():
        with warnings.catch_warnings():  # the flags context warns about Intel GPUs' TF32
            warnings.simplefilter("ignore", UserWarning)
            with torch.no_grad(), torch.backends.mkldnn.flags(enabled=not native_baseline):
                module(x)
        sync()

    def recorded():
        with contextlib.nullcontext() if compiled_step else _ckernel.disabled():
            record(module, x, **record_kwargs)
        sync()

    plain()
    recorded()  # warm up both
    if x.is_cuda:  # and the GPU's clocks, which idle low (a second of both)
        t0 = time.perf_counter()
        while time.perf_counter() - t0 < 1.0:
            plain()
            recorded()
    plain_t, record_t = [], []
    for _ in range(repeats):  # interleaved pairs: the ratio of each pair, then the median
        plain_t.append(_time(plain, 1))
        record_t.append(_time(recorded, 1))
    trace = record(module, x, **record_kwargs)
    errors = [
        max(m.get("max_abs_error_hidden", 0.0), m.get("max_abs_error_cell", 0.0))
        for m in trace.meta.get("exactness", {}).values()
        if "max_abs_error_hidden" in m
    ]
    return BenchRow(
        case,
        statistics.median(plain_t),
        statistics.median(record_t),
        statistics.median(r / p for p, r in zip(plain_t, record_t, strict=True)),
        max(errors) if errors else None,
    )


def run_benchmarks(
    units: int = 650,
    layers: int = 2,
    batch: int = 64,
    time_steps: int = 100,
    repeats: int = 7,
    device: str = "cpu",
    quick: bool = False,
) -> list[BenchRow]:
    """The benchmark table of the recorder (see the README for the figures)."""
    torch.manual_seed(0)
    if quick:
        units, batch, time_steps, repeats = 64, 8, 20, 2
    elif device != "cpu":  # milliseconds a pair, with launch-time jitter: more pairs
        repeats = max(repeats, 31)
    x = torch.randn(time_steps, batch, units, device=device)
    lstm = nn.LSTM(units, units, layers).to(device).eval()
    gru = nn.GRU(units, units, layers).to(device).eval()
    bi = nn.LSTM(units, units, layers, bidirectional=True).to(device).eval()
    dims = f"{layers}x{units}, {batch}x{time_steps}"
    rows = [
        bench_case(f"LSTM {dims}, all gates+cells", lstm, x, repeats),
        bench_case(
            f"LSTM {dims}, all, vs PyTorch's own kernel (oneDNN off)",
            lstm,
            x,
            repeats,
            native_baseline=True,
        ),
        bench_case(f"LSTM {dims}, check=full", lstm, x, repeats, check="full"),
        bench_case(
            f"LSTM {dims}, all, PyTorch ops for the step (WORKBENCH_CKERNEL=0)",
            lstm,
            x,
            repeats,
            compiled_step=False,
        ),
        bench_case(f"LSTM {dims}, layer 0 only", lstm, x, repeats, names="lstm.0.*"),
        bench_case(f"GRU {dims}, all gates", gru, x, repeats),
        bench_case(f"BiLSTM {dims}, all gates+cells", bi, x, repeats),
    ]
    if device != "cpu":
        rows.append(
            bench_case(f"LSTM {dims}, strategy=unroll", lstm, x, repeats, strategy="unroll")
        )
    else:
        rows.append(
            bench_case(f"LSTM {dims}, strategy=recover", lstm, x, repeats, strategy="recover")
        )
    return rows
