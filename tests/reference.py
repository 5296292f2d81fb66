"""Slow reference LSTM/GRU/RNN written straight from the PyTorch documentation's equations.

One sequence at a time, one step at a time, numpy float64: no shared code with the recorder.
"""

from __future__ import annotations

import numpy as np


def _sigmoid(x):
    return 1.0 / (1.0 + np.exp(-x))


def layer_weights(module, layer, direction):
    sfx = f"_l{layer}" + ("_reverse" if direction else "")
    get = lambda n: (  # noqa: E731
        getattr(module, n + sfx).detach().double().numpy() if hasattr(module, n + sfx) else None
    )
    return {n: get(n) for n in ("weight_ih", "weight_hh", "bias_ih", "bias_hh", "weight_hr")}


def lstm_step(w, x, h, c):
    """i,f,g,o = W_ih x + b_ih + W_hh h + b_hh; c' = f*c + i*g; h' = o*tanh(c') (@ W_hr)."""
    z = w["weight_ih"] @ x + w["weight_hh"] @ h
    if w["bias_ih"] is not None:
        z = z + w["bias_ih"] + w["bias_hh"]
    H = z.shape[0] // 4
    i, f, g, o = (
        _sigmoid(z[:H]),
        _sigmoid(z[H : 2 * H]),
        np.tanh(z[2 * H : 3 * H]),
        _sigmoid(z[3 * H :]),
    )
    c_new = f * c + i * g
    h_new = o * np.tanh(c_new)
    if w["weight_hr"] is not None:
        h_new = w["weight_hr"] @ h_new
    q = dict(input_gate=i, forget_gate=f, cell_input=g, output_gate=o, cell=c_new, hidden=h_new)
    return h_new, c_new, q


def gru_step(w, x, h):
    """r = s(W_ir x + b_ir + W_hr h + b_hr); z likewise;
    n = tanh(W_in x + b_in + r*(W_hn h + b_hn)); h' = (1 - z) * n + z * h."""
    gi = w["weight_ih"] @ x
    gh = w["weight_hh"] @ h
    if w["bias_ih"] is not None:
        gi, gh = gi + w["bias_ih"], gh + w["bias_hh"]
    H = gi.shape[0] // 3
    r = _sigmoid(gi[:H] + gh[:H])
    z = _sigmoid(gi[H : 2 * H] + gh[H : 2 * H])
    n = np.tanh(gi[2 * H :] + r * gh[2 * H :])
    h_new = (1 - z) * n + z * h
    return h_new, dict(reset_gate=r, update_gate=z, new_gate=n, hidden=h_new)


def rnn_step(w, x, h, nonlinearity, edits=None, layer=0, d=0, t=0):
    """a = W_ih x + b_ih + W_hh h + b_hh; h' = tanh(a) or relu(a) (Elman, nn.RNN docs)."""
    a = w["weight_ih"] @ x + w["weight_hh"] @ h
    if w["bias_ih"] is not None:
        a = a + w["bias_ih"] + w["bias_hh"]
    edits = edits or {}
    e = lambda name, v: edits[(layer, d, name)](v, t) if (layer, d, name) in edits else v  # noqa: E731
    a = e("pre_activation", a)
    h_new = e("hidden", np.tanh(a) if nonlinearity == "tanh" else np.maximum(a, 0.0))
    return h_new, dict(pre_activation=a, hidden=h_new)


def run(module, x, lengths=None, h0=None, c0=None, edits=None):
    """Reference forward of an nn.LSTM / nn.GRU / nn.RNN.

    Parameters
    ----------
    x : np.ndarray
        ``[batch, time, feature]`` (batch-first, whatever the module says).
    lengths : sequence of int, optional
        Real length of each sequence (steps past it are ignored; the reverse direction
        starts at the last real step).
    h0, c0 : np.ndarray, optional
        ``[layer * direction, batch, units]``.
    edits : dict, optional
        ``{(layer, direction, quantity): fn(vector, step) -> vector}`` applied per sequence.

    Returns
    -------
    dict
        ``(layer, direction, quantity) -> [batch, time, units]`` (zeros past lengths), plus
        ``"output"`` ``[batch, time, direction * units]``.
    """
    lstm = module.mode == "LSTM"
    elman = module.mode.startswith("RNN_")
    B, T, _ = x.shape
    D = 2 if module.bidirectional else 1
    Hout = module.proj_size or module.hidden_size if lstm else module.hidden_size
    lengths = [T] * B if lengths is None else list(lengths)
    edits = edits or {}
    out = {}
    inp = x.astype(np.float64)
    for layer in range(module.num_layers):
        layer_out = np.zeros((B, T, D * Hout))
        for d in range(D):
            w = layer_weights(module, layer, d)
            idx = layer * D + d
            for b in range(B):
                h = np.zeros(Hout) if h0 is None else h0[idx, b].astype(np.float64)
                c = np.zeros(module.hidden_size) if c0 is None else c0[idx, b].astype(np.float64)
                steps = range(lengths[b]) if d == 0 else range(lengths[b] - 1, -1, -1)
                for t in steps:
                    if elman:
                        h, q = rnn_step(w, inp[b, t], h, module.nonlinearity, edits, layer, d, t)
                    elif lstm:
                        h, c, q = _lstm_step_edited(w, inp[b, t], h, c, edits, layer, d, t)
                    else:
                        h, q = _gru_step_edited(w, inp[b, t], h, edits, layer, d, t)
                    for name, v in q.items():
                        out.setdefault((layer, d, name), np.zeros((B, T, v.shape[0])))[b, t] = v
                    layer_out[b, t, d * Hout : (d + 1) * Hout] = h
        inp = layer_out
    out["output"] = inp
    return out


def _lstm_step_edited(w, x, h, c, edits, layer, d, t):
    if not edits:
        return lstm_step(w, x, h, c)
    z = w["weight_ih"] @ x + w["weight_hh"] @ h
    if w["bias_ih"] is not None:
        z = z + w["bias_ih"] + w["bias_hh"]
    H = z.shape[0] // 4
    q = {
        "input_gate": _sigmoid(z[:H]),
        "forget_gate": _sigmoid(z[H : 2 * H]),
        "cell_input": np.tanh(z[2 * H : 3 * H]),
        "output_gate": _sigmoid(z[3 * H :]),
    }
    e = lambda name, v: edits[(layer, d, name)](v, t) if (layer, d, name) in edits else v  # noqa: E731
    q = {k: e(k, v) for k, v in q.items()}
    q["cell"] = e("cell", q["forget_gate"] * c + q["input_gate"] * q["cell_input"])
    h_new = q["output_gate"] * np.tanh(q["cell"])
    if w["weight_hr"] is not None:
        h_new = w["weight_hr"] @ h_new
    q["hidden"] = e("hidden", h_new)
    return q["hidden"], q["cell"], q


def _gru_step_edited(w, x, h, edits, layer, d, t):
    if not edits:
        return gru_step(w, x, h)
    raise NotImplementedError("GRU edits are checked against the autograd path instead")


def draw_run_settings(draw, hidden: int) -> dict:
    """Hypothesis draws shared by the recorder's exactness tests (everything but the module kind).

    ``draw`` is a ``st.composite`` draw; returns the layer shape, batch layout, input lengths,
    initial state, strategy, gradient and seed of one random recording.
    """
    from hypothesis import strategies as st

    cfg = dict(
        input_size=draw(st.integers(1, 5)),
        hidden=hidden,
        layers=draw(st.integers(1, 3)),
        bidirectional=draw(st.booleans()),
        batch_first=draw(st.booleans()),
        bias=draw(st.booleans()),
        batch=draw(st.integers(1, 4)),
        time=draw(st.integers(1, 6)),
        packed=draw(st.booleans()),
        init_state=draw(st.booleans()),
        strategy=draw(st.sampled_from(["unroll", "recover"])),
        grad=draw(st.booleans()),
        seed=draw(st.integers(0, 2**16)),
    )
    cfg["lengths"] = draw(
        st.lists(st.integers(1, cfg["time"]), min_size=cfg["batch"], max_size=cfg["batch"])
    )
    return cfg
