"""LSTM gates and cells on a GPU straight from cuDNN's training reserve space: one fused call.

A training-mode cuDNN forward keeps, for its backward pass, everything the recorder wants: each
layer's activated gates, every cell state, and the hidden states of all layers below the top
(the top layer's are the output). ``torch._cudnn_rnn(..., train=True)`` hands that buffer back
as ``reserve``, and the recorded quantities are views into it. On an H100 the training forward
ran as fast as inference (4.5-4.7 ms both, 2x650, 64 x 100), and recording every gate and cell
of that LSTM cost 1.33-1.36x the plain forward, against 2.0-2.1x for running the layers one by
one (cuDNN overlaps the layers only within one call) and recovering the gates with a GEMM and a
cell scan per layer.

The layout is not documented. Found on an H100 with cuDNN 9.19 by
``demos/gpu_reserve_layout.py``, for a one-way, unprojected LSTM of ``L`` layers on a uniform
``[T, B]`` batch, in elements of the input's dtype::

    [(L - 1), T, B, H]   hidden states of layers 0 .. L-2
    [L, T, B, H]         cell states of every layer
    [L, T, B, 4, H]      activated gates (input, forget, cell input, output) of every layer
    (a little padding at the end)

Some small random set-ups failed the check below (cuDNN lays those out otherwise), so nothing
is trusted: a call is checked against the LSTM equations at every step (``|o tanh(c) - h|`` and
``|f c_prev + i g - c|``, element-wise, no GEMM) and, because ``f c + i g`` cannot tell the
input gate from the cell input, the first step's gates of each layer are recomputed from the
weights (one ``[batch, 4 H]`` product per layer). A layout that fails is not used again for
that shape in the process: the recording is redone by the layer-by-layer recovery and reported
the same way. With ``check="none"`` the check runs on the first call of each shape only.

Used for one-way LSTMs without projections on uniform batches, outside autograd, where cuDNN
runs the module (packed, two-way and projected LSTMs and GRUs take the other paths).
``WORKBENCH_CUDNN_RESERVE=0`` turns it off.
"""

from __future__ import annotations

import threading

import torch

from workbench.config import settings
from workbench.recorder import _cudnn, _rnn

_STATE: dict = {}  # "buffer": False once cuDNN refused the module's flat buffer
_VERDICT: dict[tuple, bool] = {}  # layout key -> the equations held (True) or not (False)
_REASONS: list[str] = []  # why a layout was turned down (shown by demos/gpu_check.py)
_LOCK = threading.Lock()
_LIMIT = {torch.float32: 1e-3, torch.float16: 5e-2, torch.bfloat16: 2e-1, torch.float64: 1e-8}
QUANTITIES = ("input_gate", "forget_gate", "cell_input", "output_gate")


def usable(call: _rnn.RnnCall, grad: bool) -> bool:
    """Whether :func:`recover` may apply to this call."""
    if not settings().cudnn_reserve or grad or call.mode != "lstm" or not call.x.is_cuda:
        return False
    if call.bidirectional or call.batch_sizes is not None or call.c0 is None:
        return False
    H = call.params[0].shape[0] // 4
    if call.h0.shape[-1] != H or call.time == 0 or call.batch == 0:  # a projection
        return False
    if _VERDICT.get(_layout_key(call)) is False:
        return False
    return _cudnn.usable(call.params)


def _layout_key(call: _rnn.RnnCall) -> tuple:
    """The layout is judged per cuDNN, dtype, precision and shape (it differs for some)."""
    tf32 = call.x.dtype == torch.float32 and torch.backends.cudnn.allow_tf32
    shape = (call.x.shape[-1], call.params[0].shape[0] // 4, call.num_layers, call.batch)
    return (torch.backends.cudnn.version(), call.x.dtype, tf32, call.has_biases, call.time, shape)


def _first_step_limit(call: _rnn.RnnCall) -> float:
    if call.x.dtype == torch.float32:
        return 2e-2 if torch.backends.cudnn.allow_tf32 else 1e-3
    return 5e-2


def recover(call: _rnn.RnnCall, wanted: set, check: bool = True):
    """One training-mode fused call; the recorded quantities are views into its reserve.

    Returns
    -------
    tuple or None
        ``(output, h_n, c_n, recorded, errors)`` as :func:`._rnn.recover`, or None when the
        reserve cannot be read as expected (the caller then recovers layer by layer).
    """
    from torch.backends.cudnn import rnn as cudnn_rnn

    T, B, L = call.time, call.batch, call.num_layers
    H = call.params[0].shape[0] // 4
    key = _layout_key(call)
    try:
        flat = _cudnn.layer_weights(call.params, "lstm", L, False, call.has_biases)
        args = [call.x.contiguous(), flat, len(flat) // L, None, call.h0.contiguous(),
                call.c0.contiguous(), cudnn_rnn.get_cudnn_mode("LSTM"), H, 0, L, False, 0.0,
                True, False, [], None]  # fmt: skip
        if _STATE.get("buffer", True):  # hand cuDNN the flat buffer itself: no compaction
            storage = flat[0].untyped_storage()
            size = storage.nbytes() // flat[0].element_size()
            args[3] = flat[0].new_empty(0).set_(storage, 0, (size,))
        try:
            out, h_n, c_n, reserve, _ = torch._cudnn_rnn(*args)
        except RuntimeError as err:
            if args[3] is None:
                raise
            _REASONS.append(f"with the flat buffer: {err}"[:300])
            _STATE["buffer"] = False
            args[3] = None
            out, h_n, c_n, reserve, _ = torch._cudnn_rnn(*args)
    except (RuntimeError, TypeError, AttributeError, NotImplementedError) as err:
        _REASONS.append(f"{type(err).__name__}: {err}"[:300])
        _set_verdict(key, False)
        return None
    n = T * B * H
    need = (2 * L - 1) * n + 4 * L * n
    size = reserve.numel() // call.x.element_size()
    if reserve.dtype != torch.uint8 or size < need or size > need + 4096:
        _REASONS.append(f"reserve of {reserve.numel()} {reserve.dtype} for {need} states")
        _set_verdict(key, False)
        return None
    R = reserve.view(call.x.dtype)
    hidden = [R[layer * n : (layer + 1) * n].view(T, B, H) for layer in range(L - 1)] + [out]
    cells = R[(L - 1) * n : (2 * L - 1) * n].view(L, T, B, H)
    gates = R[(2 * L - 1) * n : need].view(L, T, B, 4, H)
    verified = _VERDICT.get(key)
    errs_h, errs_c = [], []
    if check or not verified:
        first = []
        for layer in range(L):
            g = gates[layer]
            e_h, e_c = _equations(g, cells[layer], hidden[layer], call.c0[layer])
            errs_h.append(e_h)
            errs_c.append(e_c)
            errs_c.append((cells[layer, -1] - c_n[layer]).abs().max())
            x0 = call.x[0] if layer == 0 else hidden[layer - 1][0]
            first.append(_first_step(call, layer, x0, g[0]))
        worst = max(_rnn._max_all(errs_h), _rnn._max_all(errs_c))
        scale = max(1.0, c_n.abs().max().item())
        step0 = _rnn._max_all(first)
        if not worst <= _LIMIT.get(call.x.dtype, 1e-3) * scale:  # NaN fails too
            _REASONS.append(f"the equations failed by {worst:.1e} (scale {scale:.1e})")
            _set_verdict(key, False)
            return None
        if not step0 <= _first_step_limit(call):
            _REASONS.append(f"the first step's gates are off by {step0:.1e}")
            _set_verdict(key, False)
            return None
        _set_verdict(key, True)
    recorded = {}
    for layer, d, q in wanted:
        if d != 0:
            continue
        if q in QUANTITIES:
            v = gates[layer, :, :, QUANTITIES.index(q)]
        elif q == "cell":
            v = cells[layer]
        elif q == "hidden":
            v = hidden[layer]
        else:
            continue
        recorded[(layer, 0, q)] = v
    if _kept_bytes(recorded) * 2 < reserve.numel():  # keep a small part: copy it, free the rest
        recorded = {k: v.clone() for k, v in recorded.items()}
    errors = {"hidden": _rnn._max_all(errs_h), "cell": _rnn._max_all(errs_c)}
    return out, h_n, c_n, recorded, errors


def _equations(g, c, h, c0):
    """Largest ``|o tanh(c) - h|`` and ``|f c_prev + i g - c|`` of one layer (0-d tensors)."""
    i, f, gg, o = g.unbind(2)
    e_h = torch.tanh(c).mul_(o).sub_(h).abs_().max()
    again = torch.mul(i, gg)
    again[0].addcmul_(f[0], c0)
    again[1:].addcmul_(f[1:], c[:-1])
    e_c = again.sub_(c).abs_().max()
    return e_h, e_c


def _first_step(call, layer, x0, g0):
    """Largest gap between the reserve's gates of step 0 and the gates from the weights.

    The equation check cannot tell the input gate from the cell input (``f c + i g`` is
    symmetric in them), nor see gates stored without their activation shift; one small
    product per layer ``[batch, 4 H]`` at the first step can.
    """
    p = call.layer_params(layer, 0)
    bias = None if p["b_ih"] is None else (p["b_ih"] + p["b_hh"]).float()
    z = torch.nn.functional.linear(x0.float(), p["w_ih"].float(), bias)
    z = z + call.h0[layer].float() @ p["w_hh"].float().t()
    i, f, g, o = z.chunk(4, -1)
    want = torch.stack([i.sigmoid(), f.sigmoid(), g.tanh(), o.sigmoid()], 1)
    return (want - g0.float()).abs().max()


def _kept_bytes(recorded: dict) -> int:
    views = {id(v): v for v in recorded.values()}
    return sum(v.numel() * v.element_size() for v in views.values())


def _set_verdict(key: tuple, ok: bool) -> None:
    with _LOCK:
        if _VERDICT.get(key) is not False:  # a failure is final
            _VERDICT[key] = ok
