"""Large CPU buffers backed by huge pages, where the kernel allows it.

A recording writes several times the memory of the plain forward (every gate, cell and hidden
state), all of it freshly allocated, and the first write to each 4 KiB page costs a page fault:
66 MB took 23 ms to first touch here against 3.6 ms with 2 MiB pages. Linux gives huge pages to
a region that asks for them (``madvise(MADV_HUGEPAGE)``) when transparent huge pages are in
``madvise`` or ``always`` mode; elsewhere this is a plain ``torch.empty``.
"""

from __future__ import annotations

import ctypes
import sys

import torch

from workbench._native.calibrate import chosen

_MADV_HUGEPAGE = 14
_HUGE = 2 << 20
_STATE: dict = {"madvise": None}


def _madvise():
    if not chosen().hugepages:  # measured per machine, WORKBENCH_HUGEPAGES forces
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
    advise(t)
    if zero:
        ctypes.memset(t.data_ptr(), 0, t.numel() * t.element_size())
    else:
        t.view(-1).view(torch.uint8).numpy()[::4096] = 0  # one write per page
    return t
