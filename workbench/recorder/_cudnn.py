"""Per-layer weights for cuDNN, laid out once in cuDNN's own flat buffer and kept.

``strategy="recover"`` runs a module's fused kernel one layer at a time, which hands cuDNN a
subset of the module's weights. Views into the module's flat buffer are no good for that:
cuDNN then reads the wrong memory when the module has ``bias=False`` (layer outputs off by
0.1-0.5 on an H100, torch 2.11, cuDNN 9.19), and tensors that are not one contiguous buffer in
cuDNN's layout are copied into a fresh buffer on every call ("weights are not part of single
contiguous chunk of memory"): a few milliseconds of host time per layer that the GPU waits
for, at the sizes of ``workbench bench record``.

:func:`layer_weights` lays the layers' weights out once in a buffer of their own with
``torch._cudnn_rnn_flatten_weight`` (what ``nn.LSTM.flatten_parameters`` calls), keeps it while
the module's tensors live (same objects), and copies the current values into it on every call
(one multi-tensor copy kernel, ~10 us for a 650-unit layer): a change made through ``.data``,
which no version counter sees, still reaches cuDNN. The copies are detached: under autograd the
caller uses plain clones instead, which keep the graph. A few recent layer sets are kept (the
buffers cost the layers' weights once more in GPU memory while kept).
"""

from __future__ import annotations

import torch

from workbench.config import settings
from workbench.recorder._call import GATE_BLOCKS
from workbench.recorder._kept import KeptWhileAlive

_CACHE = KeptWhileAlive(8)  # layer sets (the oldest dropped first)


def usable(params: list) -> bool:
    """Whether the kept flat buffers apply: CUDA tensors cuDNN accepts, outside autograd."""
    if not settings().cudnn_weights or not params or not params[0].is_cuda:
        return False
    if not torch.backends.cudnn.enabled or not torch._use_cudnn_rnn_flatten_weight():
        return False
    if torch.is_grad_enabled() and any(p.requires_grad for p in params):
        return False
    dtype = params[0].dtype
    return all(p.dtype == dtype and torch.backends.cudnn.is_acceptable(p) for p in params)


def layer_weights(
    params: list, mode: str, count: int, bidirectional: bool, has_biases: bool
) -> list[torch.Tensor]:
    """``params`` (``count`` layers' tensors, in ``_flat_weights`` order) in a flat buffer.

    Parameters
    ----------
    params : list of torch.Tensor
        The layers' weights: per layer and direction ``w_ih [gates*H, in]``,
        ``w_hh [gates*H, P]``, then ``b_ih, b_hh [gates*H]`` (with biases) and ``w_hr [P, H]``
        (with projections; ``P`` is the projection size, else ``H``).
    mode : {"lstm", "gru", "rnn_tanh", "rnn_relu"}
    count : int
        How many layers ``params`` holds.

    Returns
    -------
    list of torch.Tensor
        Detached copies of ``params`` with their current values, views into one buffer in
        cuDNN's layout (kept for later calls while the originals live).
    """
    key = (mode, count, bidirectional, has_biases) + tuple((id(p), p.data_ptr()) for p in params)
    flat = _CACHE.get(key, params)
    if flat is not None:
        with torch.inference_mode(False):  # the copies are normal tensors (see _flatten)
            torch._foreach_copy_(flat, [p.detach() for p in params])
        return flat
    return _CACHE.put(key, params, _flatten(params, mode, count, bidirectional, has_biases))


def clear() -> None:
    """Drop every kept buffer (frees their GPU memory)."""
    _CACHE.clear()


def _flatten(params, mode, count, bidirectional, has_biases) -> list[torch.Tensor]:
    from torch.backends.cudnn import rnn as cudnn_rnn

    gates = GATE_BLOCKS[mode]
    stride = len(params) // (count * (2 if bidirectional else 1))
    proj = params[stride - 1].shape[0] if stride in (3, 5) and mode == "lstm" else 0
    hidden = params[0].shape[0] // gates
    # normal tensors even when made under torch.inference_mode(): they are refreshed in place
    # by later calls, which may run outside it
    with torch.inference_mode(False):
        copies = [p.detach().clone() for p in params]
    with torch.no_grad(), torch.inference_mode(False), torch.cuda.device_of(copies[0]):
        torch._cudnn_rnn_flatten_weight(
            copies,
            stride,
            params[0].shape[1],
            cudnn_rnn.get_cudnn_mode(mode.upper()),
            hidden,
            proj,
            count,
            False,
            bidirectional,
        )
    return copies
