"""Matrix products of the recorder on the CPU through oneDNN, where it is faster.

PyTorch's ``F.linear`` / ``addmm`` call MKL, which on AMD CPUs runs well below the chip's
speed; oneDNN's JIT kernels (the same library ``nn.LSTM`` uses on CPUs with AVX-512) computed
the recorder's products 1.4-2.2x faster here (2-core AMD EPYC, float32, same precision: max
error against float64 within 2x of MKL's). ``torch.ops.mkldnn._linear_pointwise`` is the
dense-tensor entry point PyTorch's own compiler uses; it has no autograd formula, so it is used
only for float32 CPU tensors outside autograd, and anything it refuses falls back to
``F.linear`` for good. Whether it is used is measured once per machine (MKL is at home on
Intel CPUs; see :mod:`workbench._native.calibrate`); ``WORKBENCH_ONEDNN=0`` / ``1`` forces it.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench._native.calibrate import chosen

_STATE = {"on": None}


def _enabled() -> bool:
    if not chosen().onednn:  # measured per machine (workbench._native.calibrate)
        return False
    on = _STATE["on"]
    if on is None:
        on = torch.backends.mkldnn.is_available() and hasattr(torch.ops.mkldnn, "_linear_pointwise")
        _STATE["on"] = on
    return on


def usable(*tensors: torch.Tensor | None) -> bool:
    """Whether :func:`linear` takes the oneDNN path for these tensors."""
    ts = [t for t in tensors if t is not None]
    if not _enabled() or not ts:
        return False
    if any(t.device.type != "cpu" or t.dtype != torch.float32 for t in ts):
        return False
    return not (torch.is_grad_enabled() and any(t.requires_grad for t in ts))


def linear(x: torch.Tensor, w: torch.Tensor, b: torch.Tensor | None = None) -> torch.Tensor:
    """``x @ w.T + b`` (``x`` ``[..., in]``, ``w`` ``[out, in]``), oneDNN when usable."""
    if usable(x, w, b):
        try:
            return torch.ops.mkldnn._linear_pointwise(x, w.contiguous(), b, "none", [], "")
        except (RuntimeError, NotImplementedError):
            _STATE["on"] = False  # this build cannot: MKL from now on
    return F.linear(x, w, b)


def pack(w: torch.Tensor, batch: int) -> torch.Tensor | None:
    """``w`` ``[out, in]`` reordered once for many :func:`linear_packed` calls (or None).

    A step loop multiplies by the same recurrent weights at every step: reordering them into
    oneDNN's blocked layout once saved about a fifth of each step's product here.
    """
    if not usable(w):
        return None
    try:
        return torch.ops.mkldnn._reorder_linear_weight(w.contiguous(), int(batch))
    except (RuntimeError, NotImplementedError, AttributeError):
        return None


def linear_packed(
    x: torch.Tensor, packed: torch.Tensor | None, w: torch.Tensor, b: torch.Tensor | None = None
) -> torch.Tensor:
    """``x @ w.T + b`` with the weights :func:`pack` made (``packed``), else :func:`linear`."""
    if packed is not None:
        try:
            return torch.ops.mkldnn._linear_pointwise(x, packed, b, "none", [], "")
        except (RuntimeError, NotImplementedError):
            pass
    return linear(x, w, b)
