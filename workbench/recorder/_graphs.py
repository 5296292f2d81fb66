"""Replaying the wavefront recovery as a CUDA graph when the same call comes again.

At the sizes people explore interactively (two 650-unit layers, 64 x 100) a recording on an
H100 is bound by the host: cuDNN spends about a millisecond of CPU per 100-step layer call
launching its per-step kernels, and the wavefront's chunk calls and the recovery add more
launches than the GPU has work for. A CUDA graph replays all of them with one launch.

The first call with a given key (module weights, shapes, dtype, what is kept, precision) runs
eagerly; the second runs eagerly too and then captures the schedule into a graph with static
input copies; later calls copy the input and initial states into the graph's buffers, refresh
its flat cuDNN weight copies from the module's tensors (in-place edits reach the replay; new
tensors give a new key), replay, and clone what was recorded out of the graph's memory (so
traces never share memory with each other or the graph).

A capture that fails turns graphs off for that key and the eager path goes on. The graphs keep
their memory (intermediates and outputs of one recording) while kept: at most :data:`_KEEP`
of them, the oldest dropped first; :func:`clear` frees them all. ``WORKBENCH_CUDA_GRAPHS=0``
turns the replay off.
"""

from __future__ import annotations

import dataclasses
import threading
from collections.abc import Callable

import torch

from workbench.config import settings
from workbench.recorder import _rnn, _wavefront
from workbench.recorder._kept import KeptWhileAlive

_KEEP = 2
_GRAPHS = KeptWhileAlive(_KEEP)  # key -> _Graph, while the module's tensors live
_SEEN: dict[tuple, int] = {}  # key -> eager runs so far (a graph is captured on the 2nd)
_FAILED: set[tuple] = set()
_LOCK = threading.Lock()
_CAPTURE_LOCK = threading.Lock()


@dataclasses.dataclass
class _Graph:
    graph: torch.cuda.CUDAGraph
    x: torch.Tensor
    h0: torch.Tensor
    c0: torch.Tensor | None
    flat: list[torch.Tensor]  # the graph's own flat cuDNN weight copies, all layers
    params: list[torch.Tensor]  # the module's tensors they copy, same order
    result: tuple  # output, h_n, c_n, recorded, errs_h, errs_c (graph memory)
    lock: threading.Lock = dataclasses.field(default_factory=threading.Lock)


def recover(call: _rnn.RnnCall, wanted: set, make_runner: Callable, check: bool = True):
    """:func:`workbench.recorder._wavefront.recover`, through a CUDA graph when one is kept.

    Parameters
    ----------
    make_runner : callable
        ``make_runner() -> run_chunk`` (see :func:`._wavefront.launch`); the runner's
        ``weights`` attribute lists each layer's flat weight copies, ``params`` the module's
        tensors they copy.
    """
    key = _key(call, wanted, check)
    if key is None:
        return _wavefront.recover(call, wanted, make_runner(), check)
    entry = _GRAPHS.get(key, call.params)
    if entry is not None:
        with entry.lock:  # its input and output buffers serve one recording at a time
            return _replay(entry, call)
    runner = make_runner()
    result = _wavefront.recover(call, wanted, runner, check)
    with _LOCK:
        runs = _SEEN.get(key, 0) + 1
        _SEEN[key] = runs
        while len(_SEEN) > 64:
            _SEEN.pop(next(iter(_SEEN)))
    if runs >= 2 and key not in _FAILED:
        try:
            graph = _capture(call, wanted, runner, check)
        except Exception:  # noqa: BLE001 - an uncapturable build: stay eager for this key
            with _LOCK:
                _FAILED.add(key)
        else:
            _GRAPHS.put(key, call.params, graph)
    return result


def clear() -> None:
    """Drop every kept graph (frees their GPU memory)."""
    with _LOCK:
        _GRAPHS.clear()
        _SEEN.clear()
        _FAILED.clear()


def _key(call: _rnn.RnnCall, wanted: set, check: bool) -> tuple | None:
    x = call.x
    if not (settings().cuda_graphs and x.is_cuda):
        return None
    precision = (
        torch.backends.cudnn.allow_tf32,
        torch.backends.cuda.matmul.allow_tf32,
        torch.get_float32_matmul_precision(),
    )
    return (
        call.mode,
        tuple(x.shape),
        x.stride(),
        x.dtype,
        x.device,
        tuple(call.h0.shape),
        call.c0 is None,
        call.has_biases,
        call.num_layers,
        frozenset(wanted),
        bool(check),
        _wavefront._CHUNKS,
        precision,
        tuple((id(p), p.data_ptr(), tuple(p.shape)) for p in call.params),
    )


def _capture(call, wanted, runner, check) -> _Graph:
    with torch.inference_mode(False):  # filled in place by replays in either mode
        static = dataclasses.replace(
            call,
            x=call.x.clone(),
            h0=call.h0.clone(),
            c0=None if call.c0 is None else call.c0.clone(),
        )
    graph = torch.cuda.CUDAGraph()
    # torch.cuda.graph's default capture stream is shared by threads; it captures on the
    # current device, which need not be the input's
    with _CAPTURE_LOCK, torch.cuda.device(call.x.device):
        torch.cuda.synchronize(call.x.device)
        with torch.cuda.graph(graph, capture_error_mode="thread_local"):
            result = _wavefront.launch(static, wanted, runner, check)
    flat = [w for layer in runner.weights for w in layer]
    return _Graph(
        graph=graph,
        x=static.x,
        h0=static.h0,
        c0=static.c0,
        flat=flat,
        params=list(runner.params),
        result=result,
    )


def _replay(entry: _Graph, call: _rnn.RnnCall):
    entry.x.copy_(call.x)
    entry.h0.copy_(call.h0)
    if entry.c0 is not None:
        entry.c0.copy_(call.c0)
    if entry.flat:
        torch._foreach_copy_(entry.flat, [p.detach() for p in entry.params])
    entry.graph.replay()
    out, h_n, c_n, recorded, errs_h, errs_c = entry.result
    recorded = {k: v.clone() for k, v in recorded.items()}
    result = (out.clone(), h_n.clone(), None if c_n is None else c_n.clone(), recorded)
    # reading the errors waits for the stream: the copies are done before the lock is let go
    errors = {"hidden": _rnn._max_all(errs_h), "cell": _rnn._max_all(errs_c)}
    if not any(isinstance(e, torch.Tensor) for e in (*errs_h, *errs_c)):
        torch.cuda.current_stream(out.device).synchronize()
    return (*result, errors)
