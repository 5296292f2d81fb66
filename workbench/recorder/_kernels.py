"""The module's own fused kernel, run on parts of a call (layers, time chunks).

The recover backends let the fused kernel compute the hidden states layer by layer (or in
time chunks) and recover the rest from them; the unroll runs the layers above the deepest
recorded one in one fused call. Shapes are padded and time-major ``[time, batch, feature]``.
"""

from __future__ import annotations

import warnings

from torch import nn

from workbench.recorder import _cudnn
from workbench.recorder._call import packed_flat_index


def own_weights(params: list, call, count: int) -> list:
    """``count`` layers' weights as tensors of their own, for a fused kernel on CUDA.

    cuDNN given a subset of an ``nn.LSTM``/``nn.GRU``'s flat weights (views into the module's
    one weight buffer) reads the wrong memory when the module has ``bias=False``: layer-by-layer
    outputs then differ from the module's by 0.1-0.5 (seen on an H100, torch 2.11, cuDNN 9.19).
    Copies are exact: outside autograd they are laid out in a flat buffer of their own once
    and kept (:mod:`._cudnn`), else cloned each call. On the CPU nothing is copied.
    """
    if not params or not params[0].is_cuda:
        return params
    if _cudnn.usable(params):
        return _cudnn.layer_weights(params, call.mode, count, call.bidirectional, call.has_biases)
    return [p.clone() for p in params]


def quiet_compaction(fn):
    """Run ``fn`` without cuDNN's warning that the copied weights get compacted each call."""

    def run(*args, **kwargs):
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", message="RNN module weights are not part of")
            return fn(*args, **kwargs)

    return run


def kernel_args(call, x, h0, c0, params, layers):
    """Positional arguments of a padded fused call of ``layers`` layers."""
    hx = [h0, c0] if call.mode == "lstm" else h0
    return (x, hx, params, call.has_biases, layers, 0.0, False, call.bidirectional, False)


def real_layer(func, call):
    """Run one layer (all directions) with the fused kernel, padded, time-major."""
    return quiet_compaction(lambda layer_input, layer: fused(func, call, layer_input,
                                                                    layer, 1))  # fmt: skip


def real_rest(func, call):
    """Run layers ``first..`` with the fused kernel (nothing recorded there)."""
    return quiet_compaction(
        lambda layer_input, first: fused(func, call, layer_input, first, call.num_layers - first)
    )


def real_chunk(func, call):
    """``run(inp, layer, h0, c0)``: one one-way layer's fused kernel over a time chunk."""
    stride = len(call.params) // call.num_layers
    weights = [
        own_weights(call.params[j * stride : (j + 1) * stride], call, 1)
        for j in range(call.num_layers)
    ]
    lstm = call.mode == "lstm"

    def run(inp, layer, h0, c0):
        res = func(*kernel_args(call, inp, h0, c0, weights[layer], 1))
        return res[0], res[1], res[2] if lstm else None

    run = quiet_compaction(run)
    run.weights, run.params = weights, list(call.params)  # for a CUDA graph's refresh
    return run


def fused(func, call, layer_input, first: int, count: int):
    """Layers ``first .. first + count - 1`` in one fused call: ``(out, h_n, c_n)``.

    ``layer_input`` and ``out`` are padded and time-major; a packed call is packed again
    with its own lengths.
    """
    D = call.directions
    stride = len(call.params) // (call.num_layers * D)
    params = call.params[first * D * stride : (first + count) * D * stride]
    if first or count < call.num_layers:  # a subset of the module's flat weights
        params = own_weights(params, call, count)
    sl = slice(first * D, (first + count) * D)
    c0 = call.c0[sl] if call.c0 is not None else None
    if call.batch_sizes is None:
        res = func(*kernel_args(call, layer_input, call.h0[sl], c0, params, count))
        return res[0], res[1], res[2] if call.mode == "lstm" else None
    packed = nn.utils.rnn.pack_padded_sequence(layer_input, call.lengths(), enforce_sorted=True)
    hx = [call.h0[sl], c0] if call.mode == "lstm" else call.h0[sl]
    res = func(packed.data, packed.batch_sizes, hx, params, call.has_biases, count, 0.0,
               False, call.bidirectional)  # fmt: skip
    flat = packed_flat_index(call.batch_sizes, call.batch).to(res[0].device)
    out = res[0].new_zeros(call.time * call.batch, res[0].shape[-1])
    out = out.index_copy(0, flat, res[0]).view(call.time, call.batch, -1)
    return out, res[1], res[2] if call.mode == "lstm" else None
