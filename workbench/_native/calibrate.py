"""The CPU recording paths, chosen by measuring them once per machine.

Which product path is fastest depends on the CPU: oneDNN's products ran 1.4-2.2x faster
than MKL's on a 2-core AMD EPYC, where MKL is slow; on an Intel Xeon MKL is at home. Instead
of a vendor rule, the first recording on a machine times the candidates on a small LSTM and
GRU of representative shape (recurrent products of 64 rows, the compiled few-row sequence):

- oneDNN or MKL for the products,
- the compiled LSTM step or PyTorch's element-wise ops,
- huge pages for the recording buffers or not,
- the OpenMP team: 1, 2, 4 ... threads up to the cores this process may use.

Each candidate differs from the all-on baseline in one path; rounds run every candidate once
in a rotating order (interleaved, so a machine that slows down slows all alike), and each
candidate's score is the median over rounds of its time over the baseline's in the same round.
A path is switched off only when that is at least 3 % faster, the team shrinks only when that
is; the whole measurement stops after :data:`BUDGET_S` seconds (typically 1-3 s). The choice is
kept in a JSON file next to the compiled kernels (``~/.cache/workbench/kernels``), keyed by the
CPU model and flags, the cores, torch's version and build (oneDNN, MKL) and this measurement's
version, so a new CPU, library or core count measures again. Switches in
:mod:`workbench.config` force a path either way (``WORKBENCH_ONEDNN=0`` / ``1``,
``WORKBENCH_THREADS``); ``WORKBENCH_CALIBRATE=0`` skips the measurement (everything on).
Where other processes keep cores busy nothing is measured (their load would decide): every
path is on, and a later process on a quiet machine measures.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import statistics
import threading
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

from workbench._native import load as _load
from workbench.config import settings

VERSION = 1
BUDGET_S = 5.0  # no round starts after this (warm-up included)
MARGIN = 0.97  # a path is left only for one at least 3 % faster
ROUNDS = 7


@dataclass(frozen=True)
class Paths:
    """The chosen CPU paths of a recording.

    Attributes
    ----------
    onednn : bool
        Products through oneDNN (else MKL through ``F.linear``).
    ckernel : bool
        The compiled LSTM step (else PyTorch's element-wise ops).
    hugepages : bool
        Huge pages for the large recording buffers.
    threads : int
        The most OpenMP threads a recorded call uses (fewer where cores are busy).
    source : str
        ``measured``, ``cached`` (a file of an earlier measurement), ``default`` (not
        measured: switched off, or ``default, machine busy``: fewer cores were free than
        the process may use) or ``forced`` (a switch decided at least one path).
    """

    onednn: bool = True
    ckernel: bool = True
    hugepages: bool = True
    threads: int = 1
    source: str = "default"

    def describe(self) -> str:
        """One line: ``products oneDNN, compiled step, huge pages, 2 threads (measured)``."""
        return (
            f"products {'oneDNN' if self.onednn else 'MKL'}, "
            f"{'compiled step' if self.ckernel else 'PyTorch step ops'}, "
            f"{'huge pages' if self.hugepages else 'small pages'}, "
            f"up to {self.threads} thread{'s' if self.threads != 1 else ''} ({self.source})"
        )


_STATE: dict = {"trying": None, "for": None, "paths": None, "measured": {}}


def key_parts(cpu: str | None = None, cores: int | None = None) -> dict:
    """What a measurement depends on: CPU model and flags, cores, torch and its libraries."""
    import torch

    from workbench._native import ckernel

    return {
        "cpu": ckernel._cpu_key() if cpu is None else cpu,
        "cores": _load.cores() if cores is None else cores,
        "torch": torch.__version__,
        "build": torch.__config__.show(),
        "march": settings().ckernel_march,
        "version": VERSION,
    }


def cache_key(parts: dict) -> str:
    """The file-name key of ``parts`` (:func:`key_parts`): 16 hex digits of a SHA-256."""
    text = json.dumps(parts, sort_keys=True, default=str)
    return hashlib.sha256(text.encode()).hexdigest()[:16]


def cache_file(parts: dict | None = None) -> Path:
    """``<cache>/kernels/paths_<key>.json`` for ``parts`` (this machine by default)."""
    from workbench._cache import cache_root

    return cache_root() / "kernels" / f"paths_{cache_key(parts or key_parts())}.json"


def chosen() -> Paths:
    """The paths in force now: the measured (or cached) choice, then the switches."""
    trying = _STATE["trying"]
    if trying is not None:  # a candidate being measured
        return trying
    s = settings()
    if _STATE["for"] is s:
        return _STATE["paths"]
    base = _measured() if s.calibrate else Paths(threads=_load.cores())
    changes = {}
    for name in ("onednn", "ckernel", "hugepages"):
        if not getattr(s, name):
            changes[name] = False
        elif name in s.forced:
            changes[name] = True
    if s.threads:
        changes["threads"] = s.threads
    if any(getattr(base, k) != v for k, v in changes.items()):
        changes["source"] = "forced"
    paths = replace(base, **changes)
    _STATE["for"], _STATE["paths"] = s, paths
    return paths


def threads_now() -> int:
    """OpenMP threads for a call starting now: the chosen team, at most the free cores.

    ``WORKBENCH_THREADS`` (``configure(threads=n)``) is taken as it is.
    """
    paths = chosen()
    if settings().threads or _STATE["trying"] is not None:
        return paths.threads
    return max(1, min(paths.threads, _load.free_cores()))


@contextlib.contextmanager
def call_threads(cpu: bool = True):
    """Within the block torch's (and the compiled kernels') team is :func:`threads_now`.

    The team never grows past the caller's ``torch.get_num_threads()``: a process that asked
    for one thread (``torch.set_num_threads(1)``, ``OMP_NUM_THREADS=1``; a forking server,
    a data-loader worker) keeps one, so no OpenMP thread pool is made behind its back (a
    child forked from a process with a libgomp pool hangs in its first parallel loop).
    ``WORKBENCH_THREADS`` (``configure(threads=n)``) is taken as it is.

    ``cpu=False`` (a GPU call) changes nothing, nor does a call off the main thread: torch's
    thread count is process-wide, and threads setting and restoring it at once (a server's
    requests) could leave it at another's value.
    """
    import threading

    import torch

    if not cpu or threading.current_thread() is not threading.main_thread():
        yield torch.get_num_threads()
        return
    before = torch.get_num_threads()
    n = threads_now() if settings().threads else min(before, threads_now())
    if n == before:
        yield n
        return
    torch.set_num_threads(n)
    try:
        yield n
    finally:
        torch.set_num_threads(before)


def _measured() -> Paths:
    with _LOCK:  # one measurement, whichever thread records first
        return _measured_locked()


_LOCK = threading.Lock()


def _measured_locked() -> Paths:
    parts = key_parts()
    key = cache_key(parts)
    hit = _STATE["measured"].get(key)
    if hit is not None:
        return hit
    path = cache_file(parts)
    paths = read(path)
    quiet = _load.free_cores() == _load.cores()
    if paths is not None and _busy(path) and quiet:
        paths = None  # measured on a busy machine, and this one is quiet: measure again
    if paths is None and not quiet:
        # timings next to other busy processes measure their load, not the paths (a
        # measurement at load 17 on 2 cores "found" huge pages 2x slower): every path on,
        # and the next process that starts on a quiet machine measures
        paths = Paths(threads=_load.cores(), source="default, machine busy")
    elif paths is None:
        result = measure()
        paths = result["paths"]
        with contextlib.suppress(OSError):
            write(path, parts, result)
    _STATE["measured"][key] = paths
    return paths


def read(path: Path) -> Paths | None:
    """The choice kept in ``path``, or None (missing, unreadable or not of this form)."""
    try:
        data = json.loads(path.read_text())
        got = data["paths"]
        paths = Paths(
            onednn=bool(got["onednn"]),
            ckernel=bool(got["ckernel"]),
            hugepages=bool(got["hugepages"]),
            threads=max(1, min(int(got["threads"]), _load.cores())),
            source="cached",
        )
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return paths


def _busy(path: Path) -> bool:
    try:
        return bool(json.loads(path.read_text()).get("busy"))
    except (OSError, ValueError, AttributeError):
        return False


def write(path: Path, parts: dict, result: dict) -> None:
    """Keep ``result`` (:func:`measure`) for ``parts`` in ``path``, atomically, private."""
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    body = {
        "key": {k: v for k, v in parts.items() if k != "build"},
        "paths": {k: v for k, v in asdict(result["paths"]).items() if k != "source"},
        "ratios": result["ratios"],
        "rounds": result["rounds"],
        "seconds": result["seconds"],
        "load": result["load"],
        "busy": result.get("busy", False),
        "when": time.strftime("%Y-%m-%d %H:%M:%S UTC", time.gmtime()),
    }
    tmp = path.with_suffix(f".{os.getpid()}.tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(fd, "w") as f:
        json.dump(body, f, indent=1)
    os.replace(tmp, path)


def thread_candidates(cores: int) -> list[int]:
    """1, 2, 4 ... below ``cores``, then ``cores`` itself."""
    out, t = [], 1
    while t < cores:
        out.append(t)
        t *= 2
    return [*out, cores]


def _workload():
    """A callable recording a small LSTM (64 rows, few rows) and GRU, as recordings do."""
    import torch
    from torch import nn

    from workbench.recorder._recorder import record

    gen = torch.Generator().manual_seed(0)
    with torch.random.fork_rng():
        torch.manual_seed(0)
        lstm = nn.LSTM(256, 256, 1).eval()
        gru = nn.GRU(256, 256, 1).eval()
    x = torch.randn(16, 64, 256, generator=gen)  # 4 MB of gates: huge pages apply
    few = torch.randn(48, 4, 256, generator=gen)

    def run():
        with torch.no_grad():
            record(lstm, x, check="none")
            record(gru, x[:8], check="none")
            record(lstm, few, check="none")

    return run


def measure(budget_s: float = BUDGET_S, rounds: int = ROUNDS, run=None) -> dict:
    """Time each candidate against the all-on baseline; the choice and its evidence.

    Parameters
    ----------
    budget_s : float
        No round starts after this many seconds (at least 2 rounds run).
    rounds : int
        Interleaved rounds at most.
    run : callable, optional
        The timed work (default: a small LSTM and GRU recording, see ``_workload``).

    Returns
    -------
    dict
        ``paths`` (:class:`Paths`, ``source="measured"``), ``ratios`` (candidate -> median
        time over the baseline's), ``rounds``, ``seconds``, ``load`` (1-minute load average
        while measuring: a busy machine's choice is noisier) and ``busy`` (fewer cores were
        free than this process may use: the team was not measured).
    """
    import torch

    t_start = time.perf_counter()
    n = _load.cores()
    free = _load.free_cores()
    # a team larger than the free cores measures the others' load, not the paths (and
    # takes seconds): on a busy machine the paths are timed on the free cores and the team
    # is left to the per-call rule (threads_now); the choice is then measured again later
    base = Paths(threads=free, source="measured")
    cands = {"base": base}
    for name in ("onednn", "ckernel", "hugepages"):
        cands[f"{name} off"] = replace(base, **{name: False})
    for t in thread_candidates(free)[:-1]:
        cands[f"{t} threads"] = replace(base, threads=t)
    run = run or _workload()
    before = torch.get_num_threads()
    times: dict = {k: [] for k in cands}
    names = list(cands)
    done = 0
    try:
        for p in cands.values():  # warm-up: kernels compile, oneDNN builds its code
            with _as(p):
                run()
        while done < rounds and (done < 2 or time.perf_counter() - t_start < budget_s):
            order = names[done % len(names) :] + names[: done % len(names)]
            for k in order:
                with _as(cands[k]):
                    t0 = time.perf_counter()
                    run()
                    times[k].append(time.perf_counter() - t0)
            done += 1
    finally:
        torch.set_num_threads(before)
    ratios = {
        k: statistics.median(a / b for a, b in zip(v, times["base"], strict=True))
        for k, v in times.items()
        if k != "base"
    }
    paths = base
    for name in ("onednn", "ckernel", "hugepages"):
        if ratios[f"{name} off"] < MARGIN:
            paths = replace(paths, **{name: False})
    faster = [(ratios[f"{t} threads"], t) for t in thread_candidates(free)[:-1]]
    best = min((rt for rt in faster if rt[0] < MARGIN), default=None)
    paths = replace(paths, threads=best[1] if best else n)
    return {
        "paths": paths,
        "ratios": {k: round(v, 4) for k, v in ratios.items()},
        "rounds": done,
        "seconds": round(time.perf_counter() - t_start, 2),
        "load": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "busy": free < n,
    }


@contextlib.contextmanager
def _as(paths: Paths):
    """Within the block :func:`chosen` is ``paths`` and torch runs ``paths.threads``."""
    import torch

    old = _STATE["trying"]
    _STATE["trying"] = paths
    torch.set_num_threads(paths.threads)
    try:
        yield
    finally:
        _STATE["trying"] = old


def forget() -> None:
    """Drop this process's memo of the choice (after changing settings or the cache file)."""
    _STATE["for"] = _STATE["paths"] = None
    _STATE["measured"].clear()
