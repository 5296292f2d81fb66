"""Recorder: scoped hooks plus a torch-function mode around an unmodified model."""

from __future__ import annotations

import contextlib
import contextvars
import math
import threading
import warnings
from collections import defaultdict
from collections.abc import Callable
from typing import Any

import torch
from torch import nn
from torch.nn.utils.rnn import PackedSequence
from torch.overrides import TorchFunctionMode

from workbench._native import calibrate as _calibrate
from workbench.names import QuantityName, is_attention
from workbench.recorder import _checks, _cudnn, _graphs, _kernels, _nesting, _rnn, backends
from workbench.recorder._names import (
    NameFilter,
    RecordingError,
    Site,
    find_sites,
    select,
)
from workbench.trace import Trace

_HALF: contextvars.ContextVar = contextvars.ContextVar("workbench_half", default=False)


@contextlib.contextmanager
def half_outputs():
    """Within the block, recorded LSTM quantities may come back as float16 (private).

    Where the CPU unroll's whole-sequence kernel runs, it then writes float16 copies of the
    gates, cells and hidden states instead of float32 ones (the recurrence itself stays in
    float32, and the layer outputs the model sees are unchanged). The state store build uses
    it for float16 stores: the rounding is the same, and its transposing copy reads half the
    bytes. Other paths record in the usual dtype.
    """
    token = _HALF.set(True)
    try:
        yield
    finally:
        _HALF.reset(token)


_TOLERANCE = {torch.float64: 1e-10, torch.float32: 1e-5, torch.float16: 1e-2, torch.bfloat16: 5e-2}
# cuDNN's RNN kernels round float32 products to TF32 unless torch.backends.cudnn.allow_tf32
# is False (PyTorch's default is True): 3e-4 to 6e-4 from the float32 equations on an H100.
_TF32_TOLERANCE = 1e-3


def _tf32(x: torch.Tensor) -> bool:
    """Whether a fused RNN kernel on ``x`` may round float32 products to TF32."""
    return x.is_cuda and x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32


class _Frame:
    """A recorded recurrent module that is running right now."""

    def __init__(self, site: Site, args: tuple) -> None:
        self.site = site
        first = args[0] if args else None
        self.packed = first if isinstance(first, PackedSequence) else None
        self.handled = False


class _Mode(TorchFunctionMode):
    """Routes the fused kernel call of the running recorded module to the recorder."""

    def __init__(self, recorder: Recorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        stack = self.recorder._stack
        if stack and not _nesting.internal():  # a recorder's own kernel calls pass through
            frame = stack[-1]
            name = getattr(func, "__name__", None)
            if not frame.handled and name in frame.site.spec.kernels:
                return _nesting.run_shared(self.recorder, frame, func, args, kwargs)
        return func(*args, **kwargs)


def _on_cpu(model: nn.Module) -> bool:
    """Whether ``model``'s first parameter (if any) is on the CPU."""
    first = next(iter(model.parameters()), None)
    return first is None or first.device.type == "cpu"


class Recorder:
    """Record gates, cells, hidden states and attention of an unmodified model.

    A context manager: hooks are attached on entry and removed on exit, also when the
    forward pass raises; nothing is written onto the model's modules. Everything the model
    runs inside the ``with`` block is recorded (several calls of a module extend its time
    axis, so generation loops and step-by-step cells record naturally). Recorders nest: an
    inner one on the same module records the same real calls as the outer one (edits in
    either are refused there).

    Parameters
    ----------
    model : nn.Module
        The model, unmodified. It may hold ``nn.LSTM``, ``nn.GRU``, ``nn.RNN``,
        ``nn.LSTMCell``, ``nn.GRUCell``, ``nn.RNNCell``, ``nn.MultiheadAttention`` and
        :class:`workbench.HookPoint` modules (and kinds added with
        :func:`workbench.recorder.register_site`).
    names : None, str, list of str, or callable, optional
        What to keep: exact names, glob patterns (``"rnn.1.*.cell"``) or a predicate.
        Layers above the highest kept one run in the fused kernel and cost nothing extra.
    check : {"sample", "full", "none"}, default "sample"
        How the unrolled kernel is proven against the module's own fused kernel: on the
        first sequence of each call, on all of them (twice the cost), or not at all. The
        achieved max abs error is stored in ``trace.meta["exactness"]``.
    strategy : {"auto", "unroll", "recover"}, default "auto"
        ``unroll`` evaluates the equations step by step (fast on CPU, supports edits);
        ``recover`` lets the fused kernel run and recovers gates and cells afterwards
        (fast on GPU). ``auto`` picks ``recover`` on CUDA unless there are edits.
    edits : dict of str to callable, optional
        ``{name: fn(value[batch, units], step) -> Tensor}`` replacements (see
        :func:`workbench.intervene`).
    extra : list of str, optional
        Paths of further modules (``"encoder.proj"``) whose output is recorded as
        ``{path}.output`` (``[batch, time, units]`` as returned, ``[batch, units]`` one step
        a call), for code that cannot call a :class:`workbench.HookPoint`.

    Examples
    --------
    >>> with Recorder(model, names="rnn.*.cell") as rec:   # doctest: +SKIP
    ...     logits = model(ids)
    >>> rec.trace["rnn.0.fwd.cell"].shape                   # doctest: +SKIP
    torch.Size([batch, time, units])
    """

    def __init__(
        self,
        model: nn.Module,
        names: NameFilter = None,
        *,
        check: str = "sample",
        strategy: str = "auto",
        edits: dict[str, Callable] | None = None,
        extra: list[str] | tuple[str, ...] = (),
    ) -> None:
        if check not in ("sample", "full", "none"):
            raise RecordingError(f"check must be 'sample', 'full' or 'none', got {check!r}")
        if strategy not in ("auto", "unroll", "recover"):
            raise RecordingError(
                f"strategy must be 'auto', 'unroll' or 'recover', got {strategy!r}"
            )
        self.model = model
        self.check = check
        self.strategy = strategy
        sites = find_sites(model, extra)
        self._sites = {s.name: s for s in sites}
        self._kept = select(sites, names)
        self._edits = self._validate_edits(edits or {}, sites)
        self._handles: list[Any] = []
        self._stack: list[_Frame] = []
        self._mode: _Mode | None = None
        self._calls: dict[str, list[dict[str, torch.Tensor]]] = defaultdict(list)
        self._lengths: dict[str, list[torch.Tensor]] = defaultdict(list)
        self._meta: dict[str, dict] = {}
        self._keyed: dict[str, tuple[set, dict]] = {}
        self.active = False

    # -- set-up and tear-down ------------------------------------------------------------
    def _validate_edits(self, edits: dict[str, Callable], sites: list[Site]) -> dict:
        editable = {}
        for site in sites:
            if not site.spec.editable:
                continue
            for name in site.quantity_names():
                editable[name] = site
        for name, fn in edits.items():
            if name not in editable:
                hint = (
                    " Attention weights cannot be edited (they are computed inside the fused "
                    "attention function)."
                    if is_attention(name)
                    else f" Editable names include: {', '.join(list(editable)[:8])} ..."
                )
                raise RecordingError(f"cannot edit {name!r}: no such recordable value.{hint}")
            if not callable(fn):
                raise RecordingError(
                    f"the edit for {name!r} must be a callable fn(value, step) -> value, "
                    f"got {type(fn).__name__}"
                )
        return dict(edits)

    def _sites_to_hook(self) -> list[Site]:
        edited = {self._site_of(n) for n in self._edits}
        return [s for s in self._sites.values() if s.name in self._kept or s.name in edited]

    def _site_of(self, name: str) -> str:
        for site_name, site in self._sites.items():
            if name in site.quantity_names():
                return site_name
        raise KeyError(name)

    def __enter__(self) -> Recorder:
        if self.active:
            raise RecordingError("this Recorder is already active; nest a new Recorder instead")
        # module hooks are process-wide: calls of the same modules from other threads (a
        # server answering several requests) must pass through untouched
        self._thread = threading.get_ident()
        cpu = _on_cpu(self.model)
        if cpu:
            _calibrate.chosen()  # measured once per machine, before any hook is in place
        # the whole block (the model's other layers too) on a team of the cores free now
        self._team = _calibrate.call_threads(cpu)
        self._team.__enter__()
        try:
            for site in self._sites_to_hook():
                self._check_module(site)
                self._attach(site)
            self._handles.extend(_checks.guard_embeddings(self.model))
            self._mode = _Mode(self)
            self._mode.__enter__()
        except BaseException:
            self._detach()
            self._team.__exit__(None, None, None)
            raise
        _nesting.activate(self)
        self.active = True
        return self

    def __exit__(self, *exc) -> None:
        try:
            if self._mode is not None:
                self._mode.__exit__(*exc)
        finally:
            _nesting.deactivate(self)
            self._mode = None
            self._detach()
            self.active = False
            team, self._team = getattr(self, "_team", None), None
            if team is not None:
                team.__exit__(None, None, None)

    def _detach(self) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._stack.clear()

    def _check_module(self, site: Site) -> None:
        _checks.check_weights(site)
        problem = site.spec.check(site.name, site.module)
        if problem is not None:
            raise RecordingError(problem)

    def _attach(self, site: Site) -> None:
        m = site.module
        if site.hooking in ("fused", "cell"):
            self._handles.append(m.register_forward_pre_hook(self._push(site)))
            self._handles.append(m.register_forward_hook(self._pop, always_call=True))
        else:  # attention, HookPoints, outputs by path: the kind's own forward hooks
            self._handles.extend(site.spec.attach(self, site))

    def _push(self, site: Site):
        def hook(module, args):
            if self._other_thread():
                return
            self._stack.append(_Frame(site, args))

        return hook

    def _other_thread(self) -> bool:
        return threading.get_ident() != getattr(self, "_thread", None)

    def _pop(self, module, args, output):
        if self._other_thread():
            return None
        if self._stack and self._stack[-1].site.module is module:
            frame = self._stack.pop()
            if output is not None and not frame.handled and frame.site.hooking == "fused":
                kernels = "/".join(frame.site.spec.kernels)
                warnings.warn(
                    f"{frame.site.name} ran without calling the fused kernel the recorder "
                    f"intercepts (torch._VF.{kernels}); nothing was recorded for it",
                    stacklevel=2,
                )
        return None

    # -- fused recurrent kernels -----------------------------------------------------------
    def _run_kernel(self, frame: _Frame, func, args, kwargs):
        site = frame.site
        if site.hooking == "cell":
            return self._run_cell(frame, func, args, kwargs)
        x = args[0] if args and isinstance(args[0], torch.Tensor) else None
        # the OpenMP team sized to the cores free now (see workbench._native.calibrate)
        with _calibrate.call_threads(cpu=x is not None and x.device.type == "cpu"):
            return self._run_fused(frame, func, args, kwargs)

    def _run_fused(self, frame: _Frame, func, args, kwargs):
        site = frame.site
        fused = site.spec.parse(site.spec.mode(func.__name__), args)
        call = fused.call
        if _checks.empty_call(site, call):  # a batch of 0 rows: nothing to unroll
            return self._run_empty(site, call, func(*args, **kwargs))
        wanted, edits = self._wanted(site)
        rows = None
        sorted_idx = unsorted_idx = None
        if frame.packed is not None and frame.packed.sorted_indices is not None:
            sorted_idx = frame.packed.sorted_indices
            unsorted_idx = frame.packed.unsorted_indices
            rows = sorted_idx
        strategy = self.strategy
        if strategy == "auto":
            strategy = "recover" if call.x.is_cuda and not edits else "unroll"
        if strategy == "recover" and edits:
            raise RecordingError("edits need strategy='unroll' (or 'auto')")
        grad = backends.needs_grad(call)
        meta = {"strategy": strategy, "dtype": str(call.x.dtype).replace("torch.", "")}
        check = self.check != "none"
        half = _HALF.get() and not grad and frame.packed is None
        how = backends.Run(func, rows, check, half)
        name, res = backends.compute(strategy, call, wanted, edits, how)
        out, h_n, c_n, rec = res.out, res.h_n, res.c_n, res.recorded
        result = site.spec.pack(fused, out, h_n, c_n)
        meta.update(res.meta)
        if res.errors is None:  # the equations were evaluated: prove them against the kernel
            meta.update(self._verify(func, args, call, result, out, h_n, c_n, edits))
        else:  # the kernel's own states: the recovery measured its error
            meta.update(
                checked="full" if check else "none",
                max_abs_error_hidden=res.errors["hidden"],
                max_abs_error_cell=res.errors["cell"],
                cell_scale=c_n.abs().max().item() if c_n is not None and c_n.numel() else 1.0,
            )
        self._note_exactness(site.name, meta, call.x.dtype, _tf32(call.x))
        lengths = call.lengths()
        if unsorted_idx is not None:
            lengths = lengths[unsorted_idx.cpu()]
        names = {}
        for (layer, d, q), v in rec.items():
            if unsorted_idx is not None:
                v = v.index_select(1, unsorted_idx)
            names[QuantityName.recurrent(site.name, layer, d, q).format()] = v.transpose(0, 1)
        kept = self._kept.get(site.name, [])
        self._calls[site.name].append({n: names[n] for n in kept if n in names})
        self._lengths[site.name].append(lengths)
        return result

    def _run_empty(self, site: Site, call, result):
        """Record a call on a batch of 0 rows: the kernel's own (empty) result, empty tensors."""
        rec = _checks.empty_recording(call, self._wanted(site)[0])
        names = {QuantityName.recurrent(site.name, *k).format(): v for k, v in rec.items()}
        self._calls[site.name].append({n: names[n] for n in self._kept.get(site.name, [])})
        self._lengths[site.name].append(torch.zeros(0, dtype=torch.long))
        self._meta.setdefault(site.name, {"strategy": "none", "checked": "none (empty batch)"})
        return result

    def _wanted(self, site: Site):
        """``(wanted, edits)`` of a recurrent site keyed ``(layer, direction, quantity)``.

        Worked out once per site (a generation loop calls the module every step).
        """
        known = self._keyed.get(site.name)
        if known is None:

            def key(name: str) -> tuple[int, int, str]:
                parsed = QuantityName.parse(name)
                return parsed.layer, parsed.direction_index, parsed.quantity

            own = set(site.quantity_names())
            known = (
                {key(name) for name in self._kept.get(site.name, [])},
                {key(name): fn for name, fn in self._edits.items() if name in own},
            )
            self._keyed[site.name] = known
        return set(known[0]), dict(known[1])

    def _verify(self, func, args, call, result, out, h_n, c_n, edits) -> dict:
        """Compare the unrolled numbers with the module's own fused kernel."""
        if edits:
            return {"checked": "none (edited)"}
        if self.check == "none":
            return {"checked": "none"}
        with torch.no_grad():
            if self.check == "full":
                real = func(*args)
                err_h = max(
                    (real[0] - result[0]).abs().max().item(),
                    (real[1] - result[1]).abs().max().item(),
                )
                err_c = (real[2] - result[2]).abs().max().item() if call.mode == "lstm" else 0.0
                scale = real[2].abs().max().item() if call.mode == "lstm" else 1.0
                return {
                    "checked": "full",
                    "max_abs_error_hidden": err_h,
                    "max_abs_error_cell": err_c,
                    "cell_scale": scale,
                }
            length = int(call.lengths()[0])
            # cuDNN wants contiguous states (a column of [layers, batch, units] is not)
            x = call.x[:length, :1].contiguous()
            c0 = call.c0[:, :1].contiguous() if call.c0 is not None else None
            h0 = call.h0[:, :1].contiguous()
            real = func(*_kernels.kernel_args(call, x, h0, c0, call.params, call.num_layers))
            err_h = (real[0] - out[:length, :1]).abs().max().item() if length else 0.0
            err_h = max(err_h, (real[1] - h_n[:, :1]).abs().max().item())
            err_c = (real[2] - c_n[:, :1]).abs().max().item() if call.mode == "lstm" else 0.0
            scale = real[2].abs().max().item() if call.mode == "lstm" else 1.0
        return {
            "checked": "sample",
            "max_abs_error_hidden": err_h,
            "max_abs_error_cell": err_c,
            "cell_scale": scale,
        }

    def _note_exactness(self, site_name: str, meta: dict, dtype, tf32: bool = False) -> None:
        old = self._meta.get(site_name)
        if old is not None:
            for key in ("max_abs_error_hidden", "max_abs_error_cell"):
                if key in old and key in meta:
                    meta[key] = max(meta[key], old[key])
        tol = _TF32_TOLERANCE if tf32 else _TOLERANCE.get(dtype, 1e-5)
        meta["tolerance"] = tol
        if tf32:
            meta["tf32"] = True
        # cells are unbounded (|c| in the hundreds in trained LMs): their float error scales
        # with their size, so the cell error is also reported relative to max(1, |c_n|)
        scale = max(1.0, meta.get("cell_scale", 1.0), old.get("cell_scale", 1.0) if old else 1.0)
        meta["cell_scale"] = scale
        if "max_abs_error_cell" in meta:
            meta["max_rel_error_cell"] = meta["max_abs_error_cell"] / scale
        worst = max(meta.get("max_abs_error_hidden", 0.0), meta.get("max_rel_error_cell", 0.0))
        if math.isnan(worst):
            _checks.warn_not_finite(self._sites[site_name])
        elif worst > tol * 10:
            warnings.warn(
                f"recorded states of {site_name} differ from the fused kernel by {worst:.2e} "
                f"(tolerance {tol:.0e} for {dtype}); TF32 or low precision may be on",
                stacklevel=3,
            )
        self._meta[site_name] = meta

    # -- cells -----------------------------------------------------------------------------
    def _run_cell(self, frame: _Frame, func, args, kwargs):
        site = frame.site
        call = site.spec.parse(func.__name__, args)
        x = call.x[0]
        _, edits = self._wanted(site)
        wanted = {(0, 0, q) for q in site.spec.quantities}
        grad = torch.is_grad_enabled()
        _, h_n, c_n, rec = _rnn.unroll(call, wanted, edits, None, grad)
        meta = {"strategy": "unroll", "dtype": str(x.dtype).replace("torch.", "")}
        if edits or self.check == "none" or not x.shape[0]:
            empty = "none" if x.shape[0] else "none (empty batch)"
            meta["checked"] = "none (edited)" if edits else empty
        else:
            with torch.no_grad():
                real = func(*args, **kwargs)
            if call.mode == "lstm":
                meta.update(
                    checked="full",
                    max_abs_error_hidden=(real[0] - h_n[0]).abs().max().item(),
                    max_abs_error_cell=(real[1] - c_n[0]).abs().max().item(),
                )
            else:
                meta.update(checked="full", max_abs_error_hidden=(real - h_n[0]).abs().max().item())
        self._note_exactness(site.name, meta, x.dtype)
        kept = set(self._kept.get(site.name, []))
        step = {}
        for (_, _, q), v in rec.items():
            name = QuantityName.recurrent(site.name, 0, 0, q).format()
            if name in kept:
                step[name] = v[0][:, None]  # [batch, 1, units]
        self._calls[site.name].append(step)
        self._lengths[site.name].append(torch.ones(x.shape[0], dtype=torch.long))
        return site.spec.pack(call, h_n, c_n)

    # -- what site kinds' own hooks use ---------------------------------------------------
    def other_thread(self) -> bool:
        """Whether the calling thread is not the one that entered the recorder."""
        return self._other_thread()

    def keeps(self, site: Site) -> bool:
        """Whether anything of ``site`` is kept."""
        return site.name in self._kept

    def edit_of(self, name: str) -> Callable | None:
        """The edit given for ``name``, or None."""
        return self._edits.get(name)

    def steps(self, site: Site) -> int:
        """How many calls of ``site`` were recorded so far."""
        return len(self._calls[site.name])

    def append(self, site: Site, values: dict[str, torch.Tensor]) -> None:
        """One call's values ``{name: [batch, time, ...]}`` of ``site``."""
        self._calls[site.name].append(values)

    # -- the result ------------------------------------------------------------------------
    @property
    def trace(self) -> Trace:
        """Everything recorded so far, as a :class:`workbench.Trace`."""
        tensors: dict[str, torch.Tensor] = {}
        sites: dict[str, str] = {}
        lengths: dict[str, torch.Tensor] = {}
        for site_name, calls in self._calls.items():
            for name in self._kept.get(site_name, []):
                parts = [c[name] for c in calls if name in c]
                if not parts:
                    continue
                tensors[name] = _concat(name, parts)
                sites[name] = site_name
            if self._lengths.get(site_name):
                ls = self._lengths[site_name]
                if len({len(x) for x in ls}) > 1:
                    raise RecordingError(
                        f"{site_name} was called with different batch sizes "
                        f"({sorted({len(x) for x in ls})}); record one batch at a time"
                    )
                lengths[site_name] = torch.stack(ls).sum(0)
            elif calls and self._sites[site_name].hooking in ("hookpoint", "output"):
                first = next(iter(calls[0].values()), None)
                if first is not None and first.dim() == 3:
                    total = sum(next(iter(c.values())).shape[1] for c in calls if c)
                    lengths[site_name] = torch.full((first.shape[0],), total, dtype=torch.long)
        order = [n for s in self._sites for n in self._kept.get(s, []) if n in tensors]
        tensors = {n: tensors[n] for n in order}
        meta = {"exactness": dict(self._meta)} if self._meta else {}
        return Trace(tensors, lengths, sites, meta=meta)


def release_gpu_caches() -> None:
    """Free what GPU recordings keep between calls.

    On CUDA the recorder keeps per-layer weight copies laid out for cuDNN (the layers' weights
    once more) and up to two CUDA graphs with the memory of one recording each, so that
    repeated recordings of the same model and shapes skip that work. This drops them all; the
    next recording builds them again.
    """
    _cudnn.clear()
    _graphs.clear()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()


def _concat(name: str, parts: list[torch.Tensor]) -> torch.Tensor:
    if len(parts) == 1:
        return parts[0]
    if is_attention(name):
        keys = max(p.shape[-1] for p in parts)
        parts = [torch.nn.functional.pad(p, (0, keys - p.shape[-1])) for p in parts]
        return torch.cat(parts, dim=2)
    if len({p.shape[0] for p in parts}) > 1:
        raise RecordingError(
            f"{name} was recorded with different batch sizes across calls; "
            "record one batch at a time"
        )
    return torch.cat(parts, dim=1)


def record(
    model: nn.Module,
    *args,
    names: NameFilter = None,
    grad: bool = False,
    check: str = "sample",
    strategy: str = "auto",
    extra: list[str] | tuple[str, ...] = (),
    **kwargs,
) -> Trace:
    """Run ``model(*args, **kwargs)`` once and return everything it computed inside.

    Parameters
    ----------
    model : nn.Module
        The unmodified model.
    *args, **kwargs
        Passed to the model's forward as they are.
    names : None, str, list of str, or callable, optional
        What to keep (names, glob patterns or a predicate); everything by default.
    grad : bool, default False
        Keep the autograd graph (recorded tensors can then be differentiated). By default
        the forward runs under ``torch.no_grad()``, which is faster.
    check, strategy, extra
        See :class:`Recorder` (``extra=["encoder.proj"]`` records that module's output).

    Returns
    -------
    Trace
        Recorded tensors ``[batch, time, units]``; ``trace.output`` holds the model's return
        value.
    """
    recorder = Recorder(model, names, check=check, strategy=strategy, extra=extra)
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()), recorder:
        output = model(*args, **kwargs)
    trace = recorder.trace
    trace.output = output
    return trace


def intervene(
    model: nn.Module,
    *args,
    edits: dict[str, Callable[[torch.Tensor, int], torch.Tensor]],
    names: NameFilter = None,
    grad: bool = False,
    **kwargs,
) -> Trace:
    """Run the model with recorded quantities replaced; the recurrence continues from them.

    Parameters
    ----------
    model : nn.Module
        The unmodified model.
    *args, **kwargs
        Passed to the model's forward.
    edits : dict of str to callable
        ``{name: fn(value, step) -> value}``: ``value`` is ``[batch, units]`` at one step of
        a recurrent quantity (or what a HookPoint received); the returned tensor is used in
        its place from then on. See :mod:`workbench.recorder.edits` for ready-made edits
        (steps count from 0; one starting after the last step that ran is refused).
    names : optional
        What to record besides (everything by default).

    Returns
    -------
    Trace
        The edited run's trace; ``trace.output`` is the new model output.

    Examples
    --------
    Zero units 3 and 17 of the first layer's cell state from step 10 on:

    >>> from workbench.recorder.edits import zero                         # doctest: +SKIP
    >>> t = intervene(model, ids, edits={"rnn.0.fwd.cell": zero([3, 17], start=10)})
    """
    if not edits:
        raise RecordingError("intervene needs at least one edit: edits={name: fn}")
    recorder = Recorder(model, names, edits=edits, strategy="unroll")
    with torch.set_grad_enabled(grad and torch.is_grad_enabled()), recorder:
        output = model(*args, **kwargs)
    _checks.check_edit_reach(recorder, edits)
    trace = recorder.trace
    trace.output = output
    trace.meta["edits"] = sorted(edits)
    return trace
