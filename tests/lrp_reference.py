"""Slow LRP reference for LSTM / GRU / RNN classifiers from the equations (numpy, float64).

One sequence at a time, one step at a time; shares no code with workbench.explainers.lrp.
The model: embedding vectors x [time, feature] -> stacked (bi)LSTM/GRU -> concatenation of the
last layer's final states (forward direction at the last step, backward direction at step 0)
-> linear head. ``lrp_linear`` is ArrasL/LRP_for_LSTM's rule.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(v):
    return 1.0 / (1.0 + np.exp(-v))


def lrp_linear(hin, w, b, hout, rout, n_lower, eps, bias_factor):
    """R_i = sum_j (hin_i w_ij + bf (b_j + eps sign(hout_j)) / N) / (hout_j + eps sign) R_j.

    hin [D], w [D, M], b [M], hout [M], rout [M] -> [D].
    """
    sign = np.where(hout >= 0, 1.0, -1.0)
    numer = w * hin[:, None] + bias_factor * (b[None, :] + eps * sign[None, :]) / n_lower
    denom = hout[None, :] + eps * sign[None, :]
    return (numer / denom * rout[None, :]).sum(1)


def _weights(rnn, layer, d):
    sfx = f"_l{layer}" + ("_reverse" if d else "")
    get = lambda n: getattr(rnn, n + sfx).detach().double().numpy()  # noqa: E731
    b_ih = get("bias_ih") if hasattr(rnn, "bias_ih" + sfx) else None
    b_hh = get("bias_hh") if hasattr(rnn, "bias_hh" + sfx) else None
    return get("weight_ih"), get("weight_hh"), b_ih, b_hh


def _run_dir(kind, w, x):
    """Forward of one direction over x [T, F] (already in processing order)."""
    w_ih, w_hh, b_ih, b_hh = w
    H = w_hh.shape[1]
    b_ih = np.zeros(w_ih.shape[0]) if b_ih is None else b_ih
    b_hh = np.zeros(w_hh.shape[0]) if b_hh is None else b_hh
    h, c = np.zeros(H), np.zeros(H)
    steps = []
    for t in range(x.shape[0]):
        if kind.startswith("rnn"):  # Elman: h' = act(W_ih x + b_ih + W_hh h + b_hh)
            a = w_ih @ x[t] + b_ih + w_hh @ h + b_hh
            h_new = np.tanh(a) if kind == "rnn_tanh" else np.maximum(a, 0.0)
            steps.append(dict(a=a, h=h_new, h_prev=h))
        elif kind == "lstm":
            z = w_ih @ x[t] + b_ih + w_hh @ h + b_hh
            i, f = _sigmoid(z[:H]), _sigmoid(z[H : 2 * H])
            zg, o = z[2 * H : 3 * H], _sigmoid(z[3 * H :])
            g = np.tanh(zg)
            c_new = f * c + i * g
            h_new = o * np.tanh(c_new)
            steps.append(dict(i=i, f=f, g=g, zg=zg, c=c_new, c_prev=c, h=h_new, h_prev=h))
            c = c_new
        else:
            gi, gh = w_ih @ x[t] + b_ih, w_hh @ h + b_hh
            r = _sigmoid(gi[:H] + gh[:H])
            z = _sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
            n_pre = gi[2 * H :] + r * gh[2 * H :]
            n = np.tanh(n_pre)
            h_new = (1 - z) * n + z * h
            steps.append(dict(r=r, z=z, n=n, n_pre=n_pre, h=h_new, h_prev=h))
        h = h_new
    return steps


def _lrp_dir(kind, w, x, steps, r_h_seq, r_h_last, eps, bf, r_c_seq=None):
    """LRP back through one direction. r_h_seq [T, H] relevance of each step's output,
    r_h_last [H] of the final state, r_c_seq [T, H] of each step's cell state (LSTM).
    Returns (R_x [T, F], initial-state relevance)."""
    w_ih, w_hh, b_ih, b_hh = w
    T, Fin = x.shape
    H = w_hh.shape[1]
    b_ih = np.zeros(w_ih.shape[0]) if b_ih is None else b_ih
    b_hh = np.zeros(w_hh.shape[0]) if b_hh is None else b_hh
    eye = np.identity(H)
    zero = np.zeros(H)
    r_h = [np.zeros(H) for _ in range(T + 1)]  # r_h[t + 1] is step t; r_h[0] the initial state
    r_c = [np.zeros(H) for _ in range(T + 1)]
    r_x = np.zeros((T, Fin))
    for t in range(T):
        r_h[t + 1] = r_h[t + 1] + r_h_seq[t]
    r_h[T] = r_h[T] + r_h_last
    if r_c_seq is not None:
        for t in range(T):
            r_c[t + 1] = r_c[t + 1] + r_c_seq[t]
    for t in reversed(range(T)):
        s = steps[t]
        if kind.startswith("rnn"):  # the activation passes relevance; one affine map
            bias = b_ih + b_hh
            r_a = r_h[t + 1]
            r_x[t] = lrp_linear(x[t], w_ih.T, bias, s["a"], r_a, Fin + H, eps, bf)
            r_h[t] = r_h[t] + lrp_linear(s["h_prev"], w_hh.T, bias, s["a"], r_a, Fin + H, eps, bf)
        elif kind == "lstm":
            r_c[t + 1] = r_c[t + 1] + r_h[t + 1]
            r_c[t] = r_c[t] + lrp_linear(
                s["f"] * s["c_prev"], eye, zero, s["c"], r_c[t + 1], 2 * H, eps, bf
            )
            r_g = lrp_linear(s["i"] * s["g"], eye, zero, s["c"], r_c[t + 1], 2 * H, eps, bf)
            w_ig, w_hg = w_ih[2 * H : 3 * H], w_hh[2 * H : 3 * H]
            bias = b_ih[2 * H : 3 * H] + b_hh[2 * H : 3 * H]
            r_x[t] = lrp_linear(x[t], w_ig.T, bias, s["zg"], r_g, Fin + H, eps, bf)
            r_h[t] = r_h[t] + lrp_linear(s["h_prev"], w_hg.T, bias, s["zg"], r_g, Fin + H, eps, bf)
        else:
            r_n = lrp_linear((1 - s["z"]) * s["n"], eye, zero, s["h"], r_h[t + 1], 2 * H, eps, bf)
            r_h[t] = r_h[t] + lrp_linear(
                s["z"] * s["h_prev"], eye, zero, s["h"], r_h[t + 1], 2 * H, eps, bf
            )
            w_in, w_hn = w_ih[2 * H :], w_hh[2 * H :]
            bias = b_ih[2 * H :] + s["r"] * b_hh[2 * H :]
            r_x[t] = lrp_linear(x[t], w_in.T, bias, s["n_pre"], r_n, Fin + H, eps, bf)
            w_eff = (s["r"][:, None] * w_hn).T  # [H_in, H_out]
            r_h[t] = r_h[t] + lrp_linear(
                s["h_prev"], w_eff, bias, s["n_pre"], r_n, Fin + H, eps, bf
            )
    initial = r_h[0].sum() + (r_c[0].sum() if kind == "lstm" else 0.0)
    return r_x, initial


def reference_lrp(rnn, fc_weight, fc_bias, x, target, eps=1e-3, bias_factor=0.0):
    """LRP of one sequence through ``rnn`` and a linear head on the last layer's final states.

    Parameters
    ----------
    rnn : nn.LSTM, nn.GRU or nn.RNN (only its weights are read)
    fc_weight, fc_bias : numpy arrays [classes, directions * hidden], [classes]
    x : numpy array [time, feature] embedding vectors of one sequence (no padding)
    target : int

    Returns
    -------
    relevance [time, feature], initial-state relevance (float), score (float)
    """
    kind = {"LSTM": "lstm", "GRU": "gru"}.get(type(rnn).__name__)
    kind = kind or f"rnn_{rnn.nonlinearity}"
    D = 2 if rnn.bidirectional else 1
    L = rnn.num_layers
    T = x.shape[0]
    layer_in = [x]
    runs = []
    for layer in range(L):
        xin = layer_in[-1]
        outs, layer_runs = [], []
        for d in range(D):
            w = _weights(rnn, layer, d)
            seq = xin if d == 0 else xin[::-1]
            steps = _run_dir(kind, w, seq)
            hs = np.stack([s["h"] for s in steps])
            outs.append(hs if d == 0 else hs[::-1])
            layer_runs.append((w, seq, steps))
        runs.append(layer_runs)
        layer_in.append(np.concatenate(outs, axis=1))
    finals = [runs[-1][d][2][-1]["h"] for d in range(D)]
    h_cat = np.concatenate(finals)
    logits = fc_weight @ h_cat + (fc_bias if fc_bias is not None else 0)
    r_out = np.zeros_like(logits)
    r_out[target] = logits[target]
    b = fc_bias if fc_bias is not None else np.zeros_like(logits)
    r_hcat = lrp_linear(h_cat, fc_weight.T, b, logits, r_out, h_cat.shape[0], eps, bias_factor)
    H = rnn.hidden_size
    r_last = [r_hcat[d * H : (d + 1) * H] for d in range(D)]
    r_seq_next = [np.zeros((T, H)) for _ in range(D)]  # relevance of each direction's outputs
    initial = 0.0
    r_x = None
    for layer in reversed(range(L)):
        r_in = np.zeros_like(layer_in[layer])
        for d in range(D):
            w, seq, steps = runs[layer][d]
            r_seq = r_seq_next[d] if d == 0 else r_seq_next[d][::-1]
            r_last_d = r_last[d] if layer == L - 1 else np.zeros(H)
            rx, init = _lrp_dir(kind, w, seq, steps, r_seq, r_last_d, eps, bias_factor)
            r_in += rx if d == 0 else rx[::-1]
            initial += init
        if layer > 0:
            r_seq_next = [r_in[:, d * H : (d + 1) * H] for d in range(D)]
        r_x = r_in
    return r_x, initial, float(logits[target])


def reference_unit_lrp(rnn, x, layer, direction, quantity, units, step, eps=1e-3, bias_factor=0.0):
    """LRP of the sum of ``units`` of one layer's ``hidden`` or ``cell`` at time ``step``.

    Each selected unit's relevance is its own value; relevance goes back through that
    direction of ``layer`` and every layer below it.

    Parameters
    ----------
    rnn : nn.LSTM or nn.GRU (only its weights are read)
    x : numpy array [time, feature] embedding vectors of one sequence (no padding)
    layer, direction : int (direction 1 is the backward one)
    quantity : "hidden" or "cell"
    units : list of int
    step : int, time index (0..time-1)

    Returns
    -------
    relevance [time, feature], initial-state relevance (float), score (float)
    """
    kind = "lstm" if type(rnn).__name__ == "LSTM" else "gru"
    D = 2 if rnn.bidirectional else 1
    T, H = x.shape[0], rnn.hidden_size
    layer_in, runs = [x], []
    for lay in range(layer + 1):
        outs, layer_runs = [], []
        for d in range(D):
            w = _weights(rnn, lay, d)
            seq = layer_in[-1] if d == 0 else layer_in[-1][::-1]
            steps = _run_dir(kind, w, seq)
            hs = np.stack([s["h"] for s in steps])
            outs.append(hs if d == 0 else hs[::-1])
            layer_runs.append((w, seq, steps))
        runs.append(layer_runs)
        layer_in.append(np.concatenate(outs, axis=1))
    k = step if direction == 0 else T - 1 - step  # position in processing order
    value = runs[layer][direction][2][k]["c" if quantity == "cell" else "h"]
    r_top = np.zeros((T, H))
    r_top[k, units] = value[units]
    score = float(value[units].sum())
    initial = 0.0
    r_seq_next = None
    for lay in reversed(range(layer + 1)):
        r_in = np.zeros_like(layer_in[lay])
        for d in range(D):
            w, seq, steps = runs[lay][d]
            r_h_seq, r_c_seq = np.zeros((T, H)), None
            if lay == layer:
                if d != direction:
                    continue
                if quantity == "cell":
                    r_c_seq = r_top
                else:
                    r_h_seq = r_top
            else:
                r_h_seq = r_seq_next[d] if d == 0 else r_seq_next[d][::-1]
            rx, init = _lrp_dir(kind, w, seq, steps, r_h_seq, np.zeros(H), eps, bias_factor,
                                r_c_seq)  # fmt: skip
            r_in += rx if d == 0 else rx[::-1]
            initial += init
        r_seq_next = [r_in[:, d * H : (d + 1) * H] for d in range(D)]
    return r_in, initial, score
