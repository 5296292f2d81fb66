"""Ways of computing a recorded fused call, behind one protocol, tried in a fixed order.

A backend says whether it applies to a call (``usable``) and computes it (``run``); the
recorder takes the first usable backend of its strategy in :data:`BACKENDS` whose ``run``
does not decline (return None). Every backend returns the same :class:`Result`, and the
recorder proves it against the module's own kernel either way.

=============  ===========  ==============================================================
backend        strategy     when
=============  ===========  ==============================================================
``reserve``    recover      CUDA LSTM, one training-mode cuDNN call, gates from its reserve
``wavefront``  recover      CUDA, 2+ one-way layers: time chunks in a wavefront (CUDA graph)
``layers``     recover      everywhere: the fused kernel layer by layer, gates in one GEMM
``unroll``     unroll       everywhere: the equations step by step (edits, CPU speed)
=============  ===========  ==============================================================

Each is switched off through :mod:`workbench.config` where it has a switch
(``cudnn_reserve``, ``wavefront``). On the CPU, :func:`compute` hands a backend the product
paths measured for this machine (``how.paths``, :mod:`workbench._native.calibrate`: oneDNN or
MKL, the compiled step, huge pages) and runs it with the OpenMP team sized to the cores free
at the call. A new backend is a class with these two methods, put in
:data:`BACKENDS` with :func:`register_backend`.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass, field
from typing import Protocol

import torch

from workbench._native import calibrate as _calibrate
from workbench.recorder import _graphs, _kernels, _reserve, _rnn, _wavefront
from workbench.recorder._call import RnnCall


@dataclass
class Run:
    """What a backend needs besides the call: the kernel and how to record.

    Attributes
    ----------
    kernel : callable
        The fused function the module called (``torch._VF.lstm`` ...).
    rows : torch.Tensor or None
        Kernel row -> caller row (a packed batch), for edits.
    check : bool
        Measure the recovery's error (``check != "none"``).
    half : bool
        float16 copies of what the whole-sequence CPU kernel records are welcome.
    paths : Paths or None
        The CPU paths in force (:func:`workbench._native.calibrate.chosen`), set by
        :func:`compute` for a CPU call; the unroll's products and step follow them.
    """

    kernel: object
    rows: torch.Tensor | None = None
    check: bool = True
    half: bool = False
    paths: _calibrate.Paths | None = None


@dataclass
class Result:
    """A backend's output: time-major padded ``out``, final states and the recorded values.

    Attributes
    ----------
    out : torch.Tensor
        ``[time, batch, direction * units]`` in kernel row order.
    h_n, c_n : torch.Tensor
        ``[layer * direction, batch, units]`` (``c_n`` None but for LSTM).
    recorded : dict
        ``(layer, direction, quantity) -> [time, batch, units]``.
    errors : dict or None
        ``{"hidden": ..., "cell": ...}`` the recovery's own error (None: the recorder checks).
    meta : dict
        Extra ``trace.meta["exactness"]`` entries (``source``).
    """

    out: torch.Tensor
    h_n: torch.Tensor
    c_n: torch.Tensor | None
    recorded: dict
    errors: dict | None = None
    meta: dict = field(default_factory=dict)


class Backend(Protocol):
    """A way of computing a fused call with everything wanted kept."""

    name: str
    strategy: str  # "unroll" or "recover"

    def usable(self, call: RnnCall, needs_grad: bool) -> bool:
        """Whether :meth:`run` may apply to ``call``."""

    def run(self, call: RnnCall, wanted: set, edits: dict, how: Run) -> Result | None:
        """Compute ``call``; None declines (the next backend is tried)."""


class ReserveBackend:
    """Every state of a CUDA LSTM from one training-mode cuDNN call (:mod:`._reserve`)."""

    name, strategy = "reserve", "recover"

    def usable(self, call, needs_grad):
        return _reserve.usable(call, needs_grad)

    def run(self, call, wanted, edits, how):
        res = _reserve.recover(call, wanted, how.check)
        if res is None:
            return None
        out, h_n, c_n, rec, errors = res
        return Result(out, h_n, c_n, rec, errors, {"source": "cudnn reserve space"})


class WavefrontBackend:
    """Time chunks of one-way layers in a wavefront, replayed as a CUDA graph."""

    name, strategy = "wavefront", "recover"

    def usable(self, call, needs_grad):
        return _wavefront.usable(call, needs_grad)

    def run(self, call, wanted, edits, how):
        runner = functools.partial(_kernels.real_chunk, how.kernel, call)
        with _rnn._kernel_precision(call.x):
            out, h_n, c_n, rec, errors = _graphs.recover(call, wanted, runner, how.check)
        return Result(out, h_n, c_n, rec, errors)


class LayersBackend:
    """The fused kernel layer by layer; gates in one product, cells by a scan."""

    name, strategy = "layers", "recover"

    def usable(self, call, needs_grad):
        return True

    def run(self, call, wanted, edits, how):
        run_layer = _kernels.real_layer(how.kernel, call)
        run_rest = _kernels.real_rest(how.kernel, call)
        out, h_n, c_n, rec, errors = _rnn.recover(call, wanted, run_layer, run_rest, how.check)
        return Result(out, h_n, c_n, rec, errors)


class UnrollBackend:
    """The equations step by step with the module's weights (edits continue from them)."""

    name, strategy = "unroll", "unroll"

    def usable(self, call, needs_grad):
        return True

    def run(self, call, wanted, edits, how):
        grad = torch.is_grad_enabled() and needs_grad(call)
        rest = _kernels.real_rest(how.kernel, call)
        out, h_n, c_n, rec = _rnn.unroll(call, wanted, edits, how.rows, grad, rest, how.half)
        return Result(out, h_n, c_n, rec)


#: Backends in the order they are tried (first usable one of the strategy wins).
BACKENDS: list[Backend] = [ReserveBackend(), WavefrontBackend(), LayersBackend(), UnrollBackend()]


def register_backend(backend: Backend, before: str | None = None) -> Backend:
    """Put ``backend`` into :data:`BACKENDS`, before the one named ``before`` (else first)."""
    names = [b.name for b in BACKENDS]
    if backend.name in names:
        raise ValueError(f"a backend named {backend.name!r} is registered already")
    BACKENDS.insert(names.index(before) if before in names else 0, backend)
    return backend


def unregister_backend(name: str) -> None:
    """Remove the backend named ``name`` (the built-in ``layers`` and ``unroll`` stay)."""
    if name in ("layers", "unroll"):
        raise ValueError(f"the {name!r} backend is the fallback and cannot be removed")
    BACKENDS[:] = [b for b in BACKENDS if b.name != name]


def needs_grad(call: RnnCall) -> bool:
    """Whether autograd must see through the call (inputs, states or weights want it)."""
    return torch.is_grad_enabled() and (
        call.x.requires_grad or call.h0.requires_grad or any(p.requires_grad for p in call.params)
    )


def compute(strategy: str, call: RnnCall, wanted: set, edits: dict, how: Run):
    """``(backend name, Result)`` of the first usable backend of ``strategy``."""
    grad = needs_grad(call)
    if call.x.device.type == "cpu":
        how.paths = _calibrate.chosen()
    for backend in BACKENDS:
        if backend.strategy != strategy or not backend.usable(call, grad):
            continue
        result = backend.run(call, wanted, edits, how)
        if result is not None:
            return backend.name, result
    raise RuntimeError(f"no backend computed this {call.mode} call (strategy {strategy!r})")
