"""LRP through one direction of one LSTM / GRU layer, batched, a loop over time only.

LSTM (Arras et al. 2017, signal-take-all), per direction from the last step back::

    R_c[t] += R_h[t]                       output gate gets nothing, tanh passes relevance
    R_c[t] -> f_t * c_{t-1}, i_t * g_t     epsilon rule, identity weights, output c_t, N = 2H
    R_g[t] -> x_t (W_ig), h_{t-1} (W_hg)   epsilon rule, bias b_ig + b_hg, output the g
                                           pre-activation, N = input size + H

GRU (``h_t = (1 - z) * n + z * h_{t-1}``)::

    R_h[t] -> (1 - z) * n, z * h_{t-1}     epsilon rule, output h_t, N = 2H
    R_n    -> x_t (W_in), h_{t-1} (r * W_hn)  bias b_in + r * b_hn, N = input size + H

Gates get nothing. Steps past a sequence's length (packed input) leave the state and the
relevance carried through it unchanged.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from workbench.explainers.lrp._rules import stabilise


def _order(T: int, reverse: bool) -> range:
    return range(T - 1, -1, -1) if reverse else range(T)


def _blend(active, new, old):
    return new if active is None else torch.where(active, new, old)


def _masked(active, value):
    """``value`` where the sequence is active at this step, 0 past its length."""
    return value if active is None else torch.where(active, value, torch.zeros_like(value))


def _or_zeros(relevance, like):
    """The incoming relevance, or zeros when autograd passes None (an output nobody used)."""
    return torch.zeros_like(like) if relevance is None else relevance


def _epsilon_linear(relevance, pre, bias, eps, bias_factor, n_lower):
    """Epsilon rule through ``pre = W_ih x + W_hh h + bias`` (``[batch, H]`` each).

    Returns ``q = R / stabilised(pre)`` and the per-lower-unit bias share ``[batch, 1]``; a
    lower input ``v`` with weights ``W`` then gets ``v * (q @ W) + share``.
    """
    zs, s = stabilise(pre, eps)
    q = relevance / zs
    b = eps * s if bias is None else bias + eps * s
    return q, bias_factor * (b * q).sum(-1, keepdim=True) / n_lower


def _keep_for_input(active, t, q, share, q_all, share_all):
    """Keep step ``t``'s ``q`` and share (0 past the length) for the one batched input product."""
    q_all[t] = _masked(active, q)
    share_all[t] = _masked(active, share)


class LSTMLayerRule(torch.autograd.Function):
    """One direction of one LSTM layer.

    ``x [time, batch, feature]`` -> ``(out [time, batch, H], h_n [batch, H], c_n [batch, H],
    cells [time, batch, H])``: ``cells`` is the cell state of every step (0 past a sequence's
    length), whose relevance (a unit target) enters the cell at that step.
    """

    @staticmethod
    def forward(ctx, x, h0, c0, w_ih, w_hh, b_ih, b_hh, active, reverse, eps, bias_factor):
        T = x.shape[0]
        H = h0.shape[-1]
        xw = F.linear(x, w_ih, b_ih)
        names = ("i", "f", "g", "o", "c", "h_prev", "c_prev", "zg")
        st = {k: x.new_zeros(T, *h0.shape) for k in names}
        out = x.new_zeros(T, *h0.shape)
        cells = x.new_zeros(T, *h0.shape)
        h, c = h0, c0
        for t in _order(T, reverse):
            z = xw[t] + F.linear(h, w_hh, b_hh)
            i = torch.sigmoid(z[:, :H])
            f = torch.sigmoid(z[:, H : 2 * H])
            zg = z[:, 2 * H : 3 * H]
            g = torch.tanh(zg)
            o = torch.sigmoid(z[:, 3 * H :])
            c_new = f * c + i * g
            h_new = o * torch.tanh(c_new)
            a = None if active is None else active[t][:, None]
            for k, v in zip(names, (i, f, g, o, c_new, h, c, zg), strict=True):
                st[k][t] = v
            c = _blend(a, c_new, c)
            h = _blend(a, h_new, h)
            out[t] = _masked(a, h_new)
            cells[t] = _masked(a, c_new)
        ctx.save_for_backward(x, w_ih, w_hh, b_ih, b_hh, *(st[k] for k in names))
        ctx.active, ctx.reverse, ctx.eps, ctx.bf = active, reverse, eps, bias_factor
        return out, h, c, cells

    @staticmethod
    def backward(ctx, r_out, r_hn, r_cn, r_cells):
        x, w_ih, w_hh, b_ih, b_hh, i, f, g, o, c, h_prev, c_prev, zg = ctx.saved_tensors
        eps, bf, active = ctx.eps, ctx.bf, ctx.active
        T, B, Fin = x.shape
        H = h_prev.shape[-1]
        w_ig, w_hg = w_ih[2 * H : 3 * H], w_hh[2 * H : 3 * H]
        bias = None
        if b_ih is not None:
            bias = b_ih[2 * H : 3 * H] + b_hh[2 * H : 3 * H]
        r_out, r_cells = _or_zeros(r_out, h_prev), _or_zeros(r_cells, h_prev)
        rh, rc = _or_zeros(r_hn, h_prev[0]), _or_zeros(r_cn, h_prev[0])
        qg_all = torch.zeros_like(h_prev)
        share_all = x.new_zeros(T, B, 1)
        n_lower = Fin + H
        for t in _order(T, not ctx.reverse):
            a = None if active is None else active[t][:, None]
            rc_t = rc + rh + r_out[t] + r_cells[t]
            zs, s = stabilise(c[t], eps)
            q = rc_t / zs
            share = bf * eps * (s * q).sum(-1, keepdim=True) / (2 * H)
            rc_prev = f[t] * c_prev[t] * q + share
            rg = i[t] * g[t] * q + share
            qg, share_g = _epsilon_linear(rg, zg[t], bias, eps, bf, n_lower)
            rh_prev = h_prev[t] * (qg @ w_hg) + share_g
            _keep_for_input(a, t, qg, share_g, qg_all, share_all)
            rh = _blend(a, rh_prev, rh)
            rc = _blend(a, rc_prev, rc)
        rx = x * (qg_all @ w_ig) + share_all
        return rx, rh, rc, *([None] * 8)


class GRULayerRule(torch.autograd.Function):
    """One direction of one GRU layer.

    ``x [time, batch, feature]`` -> ``(out [time, batch, H], h_n [batch, H])``.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, active, reverse, eps, bias_factor):
        T = x.shape[0]
        H = h0.shape[-1]
        xw = F.linear(x, w_ih, b_ih)
        names = ("r", "z", "n", "n_pre", "h", "h_prev")
        st = {k: x.new_zeros(T, *h0.shape) for k in names}
        out = x.new_zeros(T, *h0.shape)
        h = h0
        for t in _order(T, reverse):
            gh = F.linear(h, w_hh, b_hh)
            r = torch.sigmoid(xw[t, :, :H] + gh[:, :H])
            z = torch.sigmoid(xw[t, :, H : 2 * H] + gh[:, H : 2 * H])
            n_pre = xw[t, :, 2 * H :] + r * gh[:, 2 * H :]
            n = torch.tanh(n_pre)
            h_new = (1 - z) * n + z * h
            a = None if active is None else active[t][:, None]
            for k, v in zip(names, (r, z, n, n_pre, h_new, h), strict=True):
                st[k][t] = v
            h = _blend(a, h_new, h)
            out[t] = _masked(a, h_new)
        ctx.save_for_backward(x, w_ih, w_hh, b_ih, b_hh, *(st[k] for k in names))
        ctx.active, ctx.reverse, ctx.eps, ctx.bf = active, reverse, eps, bias_factor
        return out, h

    @staticmethod
    def backward(ctx, r_out, r_hn):
        x, w_ih, w_hh, b_ih, b_hh, r, z, n, n_pre, h, h_prev = ctx.saved_tensors
        eps, bf, active = ctx.eps, ctx.bf, ctx.active
        T, B, Fin = x.shape
        H = h_prev.shape[-1]
        w_in, w_hn = w_ih[2 * H :], w_hh[2 * H :]
        b_in = b_ih[2 * H :] if b_ih is not None else None
        b_hn = b_hh[2 * H :] if b_hh is not None else None
        r_out, rh = _or_zeros(r_out, h_prev), _or_zeros(r_hn, h_prev[0])
        qn_all = torch.zeros_like(h_prev)
        share_all = x.new_zeros(T, B, 1)
        n_lower = Fin + H
        for t in _order(T, not ctx.reverse):
            a = None if active is None else active[t][:, None]
            rh_t = rh + r_out[t]
            zs, s = stabilise(h[t], eps)
            q = rh_t / zs
            share = bf * eps * (s * q).sum(-1, keepdim=True) / (2 * H)
            rn = (1 - z[t]) * n[t] * q + share
            rh_a = z[t] * h_prev[t] * q + share
            bias = None if b_in is None else b_in + r[t] * b_hn
            qn, share_n = _epsilon_linear(rn, n_pre[t], bias, eps, bf, n_lower)
            rh_b = h_prev[t] * ((r[t] * qn) @ w_hn) + share_n
            _keep_for_input(a, t, qn, share_n, qn_all, share_all)
            rh = _blend(a, rh_a + rh_b, rh)
        rx = x * (qn_all @ w_in) + share_all
        return rx, rh, *([None] * 8)


class RNNLayerRule(torch.autograd.Function):
    """One direction of one ``nn.RNN`` layer (Elman, ``tanh`` or ``relu``).

    ``h_t = act(a_t)``, ``a_t = W_ih x_t + b_ih + W_hh h_{t-1} + b_hh``: the activation
    passes relevance unchanged, ``R_a -> x_t (W_ih), h_{t-1} (W_hh)`` by the epsilon rule
    with bias ``b_ih + b_hh`` and ``N = input size + H``.
    ``x [time, batch, feature]`` -> ``(out [time, batch, H], h_n [batch, H])``.
    """

    @staticmethod
    def forward(ctx, x, h0, w_ih, w_hh, b_ih, b_hh, relu, active, reverse, eps, bias_factor):
        T = x.shape[0]
        xw = F.linear(x, w_ih, b_ih)
        pre = x.new_zeros(T, *h0.shape)
        h_prev = x.new_zeros(T, *h0.shape)
        out = x.new_zeros(T, *h0.shape)
        h = h0
        for t in _order(T, reverse):
            a = xw[t] + F.linear(h, w_hh, b_hh)
            h_new = torch.relu(a) if relu else torch.tanh(a)
            pre[t], h_prev[t] = a, h
            m = None if active is None else active[t][:, None]
            h = _blend(m, h_new, h)
            out[t] = _masked(m, h_new)
        ctx.save_for_backward(x, w_ih, w_hh, b_ih, b_hh, pre, h_prev)
        ctx.active, ctx.reverse, ctx.eps, ctx.bf = active, reverse, eps, bias_factor
        return out, h

    @staticmethod
    def backward(ctx, r_out, r_hn):
        x, w_ih, w_hh, b_ih, b_hh, pre, h_prev = ctx.saved_tensors
        eps, bf, active = ctx.eps, ctx.bf, ctx.active
        T, B, Fin = x.shape
        H = h_prev.shape[-1]
        bias = None if b_ih is None else b_ih + b_hh
        r_out, rh = _or_zeros(r_out, h_prev), _or_zeros(r_hn, h_prev[0])
        q_all = torch.zeros_like(h_prev)
        share_all = x.new_zeros(T, B, 1)
        n_lower = Fin + H
        for t in _order(T, not ctx.reverse):
            m = None if active is None else active[t][:, None]
            q, share = _epsilon_linear(rh + r_out[t], pre[t], bias, eps, bf, n_lower)
            rh_prev = h_prev[t] * (q @ w_hh) + share
            _keep_for_input(m, t, q, share, q_all, share_all)
            rh = _blend(m, rh_prev, rh)
        rx = x * (q_all @ w_ih) + share_all
        return rx, rh, *([None] * 9)
