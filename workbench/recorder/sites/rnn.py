"""``nn.RNN`` and ``nn.RNNCell`` (Elman networks, ``tanh`` or ``relu``): kinds and equations.

Per step ``pre_activation_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh`` and
``hidden_t = act(pre_activation_t)``, ``act`` being ``tanh`` (``rnn_tanh``) or ``relu``
(``rnn_relu``). Shapes are time-major ``[time, batch, units]``, rows in kernel order.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from workbench.recorder.sites import Equations, register_equations, register_site
from workbench.recorder.sites.cells import CellKind
from workbench.recorder.sites.fused import FusedKind

QUANTITIES = ("pre_activation", "hidden")
MODES = ("rnn_tanh", "rnn_relu")


class RNNKind(FusedKind):
    """``nn.RNN``: ``torch._VF.rnn_tanh`` / ``rnn_relu``, padded or packed."""

    kind, modules, kernels, quantities = "rnn", (nn.RNN,), MODES, QUANTITIES


class RNNCellKind(CellKind):
    """``nn.RNNCell``: ``torch._VF.rnn_tanh_cell`` / ``rnn_relu_cell``, one step a call."""

    kind, modules, quantities = "rnn_cell", (nn.RNNCell,), QUANTITIES
    kernels = tuple(f"{m}_cell" for m in MODES)


def activation(mode: str):
    """``torch.tanh`` for ``rnn_tanh``, ``torch.relu`` for ``rnn_relu``."""
    return torch.relu if mode == "rnn_relu" else torch.tanh


def unroll_direction(call, p, steps, edits, rows, h0, edit_value):
    """One direction step by step; the recurrence continues from edited values.

    Returns
    -------
    recorded : dict
        ``pre_activation`` and ``hidden`` ``[time, batch, units]`` (zeros past each length).
    h : torch.Tensor
        ``[batch, units]`` final states.
    """
    act = activation(call.mode)
    B = call.batch
    xp = F.linear(call.x, p["w_ih"], p["b_ih"])
    h = h0
    pre, hid = [None] * call.time, [None] * call.time
    for t in steps.order:
        n = steps.active(t)
        z = xp[t, :n] + F.linear(h[:n], p["w_hh"], p["b_hh"])
        if "pre_activation" in edits:
            z = edit_value(edits["pre_activation"], z, t, rows, B)
        ht = act(z)
        if "hidden" in edits:
            ht = edit_value(edits["hidden"], ht, t, rows, B)
        pre[t], hid[t] = _pad_rows(z, B), _pad_rows(ht, B)
        h = ht if n == h.shape[0] else torch.cat([ht, h[n:]])
    if call.time == 0:
        empty = call.x.new_zeros(0, B, h0.shape[-1])
        return {"pre_activation": empty, "hidden": empty}, h
    return {"pre_activation": torch.stack(pre), "hidden": torch.stack(hid)}, h


def recover_direction(mode, x, hid, h_prev, p, mask, check=True):
    """Pre-activations of all steps in one product from the kernel's own hidden states.

    Parameters
    ----------
    x : torch.Tensor
        ``[time, batch, feature]`` the layer's input.
    hid, h_prev : torch.Tensor
        ``[time, batch, units]`` the kernel's hidden states and each step's previous one.
    mask : torch.Tensor or None
        ``[time, batch, 1]`` real steps (None: all are).

    Returns
    -------
    recorded : dict
    error : float or 0-d tensor
        ``max |act(pre_activation) - hidden|`` over real steps (0 without ``check``).
    """
    z = F.linear(x, p["w_ih"], p["b_ih"]) + F.linear(h_prev, p["w_hh"], p["b_hh"])
    if mask is not None:
        z = z * mask
        hid = hid * mask
    err = 0.0
    if check and hid.numel():
        again = activation(mode)(z) - hid
        err = (again if mask is None else again * mask).abs().max()
    return {"pre_activation": z, "hidden": hid}, err


def _pad_rows(v: torch.Tensor, batch: int) -> torch.Tensor:
    return v if v.shape[0] == batch else F.pad(v, (0, 0, 0, batch - v.shape[0]))


RNN = register_site(RNNKind(), builtin=True)
RNN_CELL = register_site(RNNCellKind(), builtin=True)
for _mode in MODES:
    register_equations(_mode, Equations(unroll_direction, recover_direction))
