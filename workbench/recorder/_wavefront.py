"""``strategy="recover"`` for stacked one-way layers on a GPU: a wavefront over time chunks.

Recovering gates needs every layer's hidden states, and cuDNN returns only the top layer's, so
:func:`workbench.recorder._rnn.recover` runs the fused kernel one layer at a time. On an H100
that alone cost 1.5x the module's own forward (LSTM 2x650, 64 x 100: 4.8 ms against 3.2 ms):
cuDNN overlaps the layers of one multi-layer call (layer ``l`` works on step ``t`` while layer
``l + 1`` works on step ``t - 1``; each step's product is far too small to fill the GPU), and
separate calls lose that.

Here each layer runs as a one-layer call per time chunk on a CUDA stream of its own: chunk
``k`` of layer ``l`` waits only for chunk ``k`` of layer ``l - 1`` (an event) and, on its own
stream, for chunk ``k - 1`` of its layer, whose final states it starts from. So the layers
can overlap again (on the H100 they did less than inside cuDNN's own multi-layer call), and the
gate recovery of a finished layer (one GEMM and the cell scan, on a further stream) overlaps
the layers still running. The chunks' states are the same recurrence
(the final states of a chunk start the next); only the input product is split by chunk, which
may round differently from one product over all steps (within the kernel's own precision).

Used for uniform batches of one-way, two-or-more-layer ``nn.GRU`` modules (and LSTMs whose
states cannot be read from cuDNN's reserve space, :mod:`._reserve`: projections, a layout that
failed its check) on CUDA outside autograd; packed or bidirectional calls take the
layer-by-layer path. From the second call of the same shapes the schedule is replayed as a CUDA
graph (:mod:`._graphs`): eagerly, cuDNN's host time per chunk call (~0.65 ms on an H100 host)
cost more than the overlap gained (LSTM 2x650, 64 x 100: 2.0x the plain forward against 1.7x
layer by layer); replayed, a GRU of that size recorded at 1.1-1.4x against 1.4-1.6x.
Streams begin by waiting for the caller's stream and the caller's stream waits for all of them
at the end; every tensor that crosses streams is held until then.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable

import torch

from workbench.config import settings
from workbench.recorder import _rnn

_CHUNKS = 4  # time chunks per layer
_MIN_STEPS = 8  # steps a chunk at least


def usable(call: _rnn.RnnCall, grad: bool) -> bool:
    """Whether :func:`recover` applies to this call."""
    on = settings()
    if not on.wavefront or grad or call.batch_sizes is not None or call.bidirectional:
        return False
    if call.mode not in ("lstm", "gru") or not (call.x.is_cuda or on.wavefront_cpu):
        return False
    return call.num_layers >= 2 and len(bounds(call.time)) >= 2


def bounds(T: int) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` time chunks of ``T`` steps, as even as they come."""
    k = max(1, min(_CHUNKS, T // _MIN_STEPS))
    cuts = [round(j * T / k) for j in range(k + 1)]
    return [(cuts[j], cuts[j + 1]) for j in range(k)]


_LOCAL = threading.local()


def _streams(device: torch.device, n: int) -> list[torch.cuda.Stream]:
    """``n`` side streams of this thread's own (a CUDA graph capture joins them into it)."""
    kept = getattr(_LOCAL, "streams", None)
    if kept is None:
        kept = _LOCAL.streams = {}
    if (device, n) not in kept:
        kept[(device, n)] = [torch.cuda.Stream(device=device) for _ in range(n)]
    return kept[(device, n)]


def recover(call: _rnn.RnnCall, wanted: set, run_chunk: Callable, check: bool = True):
    """Run the module in a wavefront of chunk calls and recover what ``wanted`` keeps.

    Parameters
    ----------
    run_chunk : callable
        As :func:`launch`.

    Returns
    -------
    output, h_n, c_n, recorded, errors
        As :func:`workbench.recorder._rnn.recover`.
    """
    out, h_n, c_n, recorded, errs_h, errs_c = launch(call, wanted, run_chunk, check)
    errors = {"hidden": _rnn._max_all(errs_h), "cell": _rnn._max_all(errs_c)}
    return out, h_n, c_n, recorded, errors


def launch(call: _rnn.RnnCall, wanted: set, run_chunk: Callable, check: bool = True):
    """Queue the wavefront and the recovery on the device, with no host sync (capturable).

    Parameters
    ----------
    run_chunk : callable
        ``run_chunk(inp, layer, h0, c0) -> (out, h_n, c_n)``: one layer's fused kernel over
        ``inp`` ``[steps, batch, in]`` from ``h0`` ``[1, batch, P]`` (and ``c0``
        ``[1, batch, H]``, LSTM; else None); ``c_n`` is None for a GRU.

    Returns
    -------
    output, h_n, c_n, recorded
        As :func:`workbench.recorder._rnn.recover`.
    errs_h, errs_c : list
        The recomputation errors per recovered layer (floats or 0-d tensors).
    """
    L, x = call.num_layers, call.x
    chunks = bounds(call.time)
    K = len(chunks)
    lengths = torch.full((call.batch,), call.time, dtype=torch.long, device=x.device)
    last = max((k[0] for k in wanted), default=-1)  # the deepest layer anything is kept of
    cuda = x.is_cuda
    if cuda:
        caller = torch.cuda.current_stream(x.device)
        streams = _streams(x.device, L + 1)
        for s in streams:
            s.wait_stream(caller)
    else:
        streams = [None] * (L + 1)
    fix = streams[L]  # the recovery stream
    outs = [[None] * K for _ in range(L)]
    done = [[None] * K for _ in range(L)]
    states = [(call.h0[j : j + 1], None if call.c0 is None else call.c0[j : j + 1])
              for j in range(L)]  # fmt: skip
    hid: list[torch.Tensor | None] = [None] * L
    recorded: dict = {}
    errs_h, errs_c = [], []
    for diagonal in range(K + L - 1):
        for layer in range(L):
            k = diagonal - layer
            if not 0 <= k < K:
                continue
            s = streams[layer]
            with _on(s):
                if layer == 0:
                    inp = x[chunks[k][0] : chunks[k][1]]
                else:
                    if cuda:
                        s.wait_event(done[layer - 1][k])
                    inp = outs[layer - 1][k]
                out, h_n, c_n = run_chunk(inp, layer, *states[layer])
                outs[layer][k] = out
                states[layer] = (h_n, c_n)
                if k == K - 1 and (layer <= last or layer == L - 1):
                    hid[layer] = torch.cat(outs[layer]) if K > 1 else out
                done[layer][k] = s.record_event() if cuda else None
            if k == K - 1 and layer <= last:
                with _on(fix):
                    if cuda:
                        fix.wait_event(done[layer][k])
                    layer_input = x if layer == 0 else hid[layer - 1]
                    c_last = None if c_n is None else c_n[0]
                    args = (call, wanted, layer, 0, layer_input, hid[layer], c_last, lengths)
                    errs = _rnn.recover_direction(*args, None, check, recorded)
                    if errs is not None:
                        errs_h.append(errs[0])
                        errs_c.append(errs[1])
    if cuda:
        for s in streams:
            caller.wait_stream(s)
    h_n = torch.cat([h for h, _ in states])
    c_n = None if call.c0 is None else torch.cat([c for _, c in states])
    return hid[L - 1], h_n, c_n, recorded, errs_h, errs_c


def _on(stream):
    return torch.cuda.stream(stream) if stream is not None else contextlib.nullcontext()
