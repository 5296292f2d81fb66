"""``workbench bench record``: recording cost as a ratio to the plain forward pass."""

from __future__ import annotations

import contextlib
import os
import platform
import statistics
import subprocess
import sys
import time
import warnings
from dataclasses import dataclass
from pathlib import Path

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
    ratio_iqr: tuple[float, float] | None = None  # quartiles of the pairs' ratios


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
    ratios = [r / p for p, r in zip(plain_t, record_t, strict=True)]
    errors = [
        max(m.get("max_abs_error_hidden", 0.0), m.get("max_abs_error_cell", 0.0))
        for m in trace.meta.get("exactness", {}).values()
        if "max_abs_error_hidden" in m
    ]
    return BenchRow(
        case,
        statistics.median(plain_t),
        statistics.median(record_t),
        statistics.median(ratios),
        max(errors) if errors else None,
        quartiles(ratios),
    )


def quartiles(values: list[float]) -> tuple[float, float]:
    """The first and third quartiles of ``values`` (both the value itself for one)."""
    if len(values) < 2:
        return (values[0], values[0]) if values else (float("nan"), float("nan"))
    q = statistics.quantiles(values, n=4, method="inclusive")
    return q[0], q[2]


def cpu_model() -> str:
    """The CPU's model name (``/proc/cpuinfo``), with this process's core count."""
    from workbench._native.load import cores

    name = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                name = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    return f"{name}, {cores()} core(s)"


_BUSY = """
import os, sys
parent = int(sys.argv[1])
while os.getppid() == parent:  # ends by itself if the benchmark dies
    for _ in range(200_000):
        pass
"""


@contextlib.contextmanager
def busy_processes(n: int):
    """``n`` processes that each keep one core busy, stopped when the block ends, always.

    Each runs in a session of its own, as another program would: where the kernel groups
    processes by session for scheduling (``sched_autogroup``), busy children in the
    benchmark's own session would share its slice of the CPU instead of competing for the
    machine. Each also stops by itself within a few milliseconds once its parent is gone.
    """
    procs = []
    try:
        for _ in range(n):
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-c", _BUSY, str(os.getpid())],
                    stdin=subprocess.DEVNULL,
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                    start_new_session=True,
                )
            )
        time.sleep(0.3)  # running, and seen by the kernel's runnable count
        yield procs
    finally:
        for p in procs:
            p.kill()
        for p in procs:
            p.wait()


@dataclass
class ContentionRow:
    """One case timed quiet and with ``busy`` competing busy processes, in pairs."""

    case: str
    busy: int
    quiet_s: float
    contended_s: float
    ratio: float
    ratio_iqr: tuple[float, float]
    bound: float = 2.5


def contention_case(case: str, fn, busy: int = 2, pairs: int = 5) -> ContentionRow:
    """Median of ``pairs`` (quiet, contended) pairs of ``fn()``; competitors restart each pair.

    The ratio is contended over quiet time. With 2 competitors on 2 cores a process gets a
    third to a half of the CPU, so about 2x is fair; the bound is 2.5x.
    """
    fn()  # warm up
    quiet, loaded = [], []
    for _ in range(max(1, pairs)):
        quiet.append(_time(fn, 1))
        with busy_processes(busy):
            loaded.append(_time(fn, 1))
    ratios = [c / q for q, c in zip(quiet, loaded, strict=True)]
    return ContentionRow(
        case,
        busy,
        statistics.median(quiet),
        statistics.median(loaded),
        statistics.median(ratios),
        quartiles(ratios),
    )


def run_contention(
    busy: int = 2,
    pairs: int = 5,
    units: int = 650,
    layers: int = 2,
    batch: int = 64,
    time_steps: int = 100,
    quick: bool = False,
    store_tokens: int = 20_000,
) -> list[ContentionRow]:
    """Recording, the plain forward and a small store build, quiet against contended."""
    torch.manual_seed(0)
    if quick:
        units, batch, time_steps, pairs, store_tokens = 64, 8, 20, 2, 2_000
    x = torch.randn(time_steps, batch, units)
    lstm = nn.LSTM(units, units, layers).eval()
    dims = f"{layers}x{units}, {batch}x{time_steps}"

    def plain():
        with torch.no_grad():
            lstm(x)

    alone = f"LSTM {dims}, plain forward, PyTorch alone (its own team, for comparison)"
    rows = [
        contention_case(f"LSTM {dims}, record all", lambda: record(lstm, x), busy, pairs),
        contention_case(alone, plain, busy, pairs),
    ]
    rows.append(_store_contention(store_tokens, busy, pairs))
    return rows


def _store_contention(tokens: int, busy: int, pairs: int) -> ContentionRow:
    """A store build of ``tokens`` characters of the shipped Python corpus, float16."""
    import shutil
    import tempfile

    from workbench.bench.store import _python_lm
    from workbench.data import corpus
    from workbench.store import StateStore

    lm, label = _python_lm()
    model, tok = (lm.model, lm.tokenizer) if hasattr(lm, "model") else lm
    docs = corpus("python", "test", max_tokens=tokens)
    n = sum(len(d) for d in docs)
    tmp = Path(tempfile.mkdtemp(prefix="wb-contention-"))
    count = [0]

    def build():
        count[0] += 1
        out = tmp / f"s{count[0]}"
        StateStore.build((model, tok), docs, out, progress=False)
        shutil.rmtree(out, ignore_errors=True)

    try:
        return contention_case(f"store build, {n:,} tokens ({label})", build, busy, pairs)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)


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
