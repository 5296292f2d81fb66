"""Large CPU buffers backed by huge pages, where the kernel allows it.

A recording writes several times the memory of the plain forward (every gate, cell and hidden
state), all of it freshly allocated, and the first write to each 4 KiB page costs a page fault:
66 MB took 23 ms to first touch here against 3.6 ms with 2 MiB pages. Linux gives huge pages to
a region that asks for them (``madvise(MADV_HUGEPAGE)``) when transparent huge pages are in
``madvise`` or ``always`` mode; elsewhere this is a plain ``torch.empty``.

Huge pages are fast only where the kernel has warm 2 MiB blocks to give. On a virtual machine
whose host backs guest memory on first use, a fresh huge page is memory the guest never
touched: on the shared 2-core Intel Xeon VM the first huge-page touches of a recording's 470 MB
took 4.3 s (9 ms per MB) against 0.3 s in 4 KiB pages (reused, already backed), while warm huge
pages took 0.08 s. Each touch is timed: one slower than ``SLOW_S_PER_MB`` turns huge pages off
for this process for ``BACKOFF_S`` seconds (not where ``WORKBENCH_HUGEPAGES=1`` forces them).
"""

from __future__ import annotations

import ctypes
import sys
import time

import torch

from workbench._native.calibrate import chosen
from workbench.config import settings

_MADV_HUGEPAGE = 14
_HUGE = 2 << 20
# warm huge pages touched at 0.17 ms per MB, 4 KiB pages at 0.4-0.8 (shared Intel VM, load 10):
# slower than this per MB, the huge pages were fresh host memory (4-9 ms per MB there)
SLOW_S_PER_MB = 1.5e-3
BACKOFF_S = 120.0
_TIMED_BYTES = 8 << 20  # smaller touches are too short to time
_STATE: dict = {"madvise": None, "off_until": 0.0}


def slow_touch(nbytes: int, seconds: float) -> bool:
    """Whether touching ``nbytes`` of fresh huge pages in ``seconds`` says they are cold."""
    return nbytes >= _TIMED_BYTES and seconds > SLOW_S_PER_MB * nbytes / 2**20


def backed_off() -> bool:
    """Whether huge pages are off for now after a slow touch (never where forced on)."""
    return time.monotonic() < _STATE["off_until"] and "hugepages" not in settings().forced


def _madvise():
    if not chosen().hugepages:  # measured per machine, WORKBENCH_HUGEPAGES forces
        return False
    if backed_off():
        return False
    fn = _STATE["madvise"]
    if fn is None:
        fn = False
        if sys.platform.startswith("linux"):
            try:
                fn = ctypes.CDLL(None, use_errno=True).madvise
                fn.argtypes = [ctypes.c_void_p, ctypes.c_size_t, ctypes.c_int]
                fn.restype = ctypes.c_int
            except (OSError, AttributeError):
                fn = False
        _STATE["madvise"] = fn
    return fn


def advise(t: torch.Tensor) -> torch.Tensor:
    """Ask for huge pages under ``t``'s storage (untouched memory only gains); returns ``t``."""
    nbytes = t.untyped_storage().nbytes()
    fn = _madvise()
    if not fn or t.device.type != "cpu" or nbytes < 2 * _HUGE:
        return t
    start = t.untyped_storage().data_ptr()
    lo = -(-start // _HUGE) * _HUGE  # whole huge pages inside the buffer only
    hi = (start + nbytes) // _HUGE * _HUGE
    if hi > lo:
        fn(lo, hi - lo, _MADV_HUGEPAGE)  # advice: failure changes nothing
    return t


def empty(*shape: int, like: torch.Tensor, zero: bool = False) -> torch.Tensor:
    """``like.new_empty(shape)`` (``new_zeros`` if ``zero``), on huge pages where possible.

    A big CPU buffer is also touched here, page by page on this one thread: when two threads
    (a kernel's OpenMP team) took the first faults of the same huge pages at once, a recording
    ran 1.5-2x slower here, so the faults are taken up front, where they cost about 4 ms per
    66 MB (23 ms with 4 KiB pages).
    """
    t = like.new_empty(shape)
    big = t.device.type == "cpu" and t.numel() * t.element_size() >= 2 * _HUGE
    if not big or not _madvise():
        return t.zero_() if zero else t
    nbytes = t.numel() * t.element_size()
    start = time.perf_counter()
    advise(t)
    if zero:
        ctypes.memset(t.data_ptr(), 0, nbytes)
    else:
        t.view(-1).view(torch.uint8).numpy()[::4096] = 0  # one write per page
    if slow_touch(nbytes, time.perf_counter() - start):
        _STATE["off_until"] = time.monotonic() + BACKOFF_S
    return t
