"""LRP of an encoder-decoder's output step: conservation through the attention and the
bridge, and agreement with a slow float64 reference written from the equations."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from lrp_reference import _lrp_dir, _run_dir, _weights, lrp_linear

from workbench.explainers import OutputStep, explain
from workbench.models.seq2seq import BOS, G2P


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(1)
    model = G2P(src_vocab=9, tgt_vocab=7, embed=5, hidden=4, dec_hidden=6, attn=3).eval()
    src = torch.tensor([[2, 3, 4, 5, 6], [7, 8, 2, 0, 0]])
    lengths = torch.tensor([5, 3])
    target = torch.tensor([[4, 5, 6, 3], [6, 4, 3, 0]])
    return model, src, lengths, target


def _sig(v):
    return 1.0 / (1.0 + np.exp(-v))


def _reference(model, src, n, target, step, token, eps, bf):
    """LRP of ``logits[step, token]`` of one word (ids ``src[:n]``), float64, one step a time.

    Attention weights are gates: ``ctx = sum_j alpha_j K_j`` passes relevance to each term
    by the epsilon rule (N = n terms), each term's to ``K_j``; scores get nothing.
    Returns (relevance per source position [n], per fed token [step + 1], encoder initial
    states, score).
    """
    p = {k: v.detach().double().numpy() for k, v in model.state_dict().items()}
    x = p["src_embed.weight"][src[:n]]
    H = model.encoder.hidden_size
    wf, wb = _weights(model.encoder, 0, 0), _weights(model.encoder, 0, 1)
    sf, sb = _run_dir("lstm", wf, x), _run_dir("lstm", wb, x[::-1])
    K = np.concatenate(
        [np.stack([s["h"] for s in sf]), np.stack([s["h"] for s in sb])[::-1]], 1
    )  # [n, 2H]
    last = np.concatenate([sf[-1]["h"], sb[-1]["h"]])
    u = p["bridge.weight"] @ last + p["bridge.bias"]
    D = model.cell.hidden_size
    h, c = np.tanh(u[:D]), np.tanh(u[D:])
    proj = K @ p["attention.key.weight"].T + p["attention.key.bias"]
    w_ih, w_hh = p["cell.weight_ih"], p["cell.weight_hh"]
    b = p["cell.bias_ih"] + p["cell.bias_hh"]
    steps, prev = [], BOS
    for t in range(step + 1):
        e = np.tanh(proj + p["attention.query.weight"] @ h) @ p["attention.score.weight"][0]
        a = np.exp(e - e.max())
        a /= a.sum()
        ctx = a @ K
        xin = np.concatenate([p["tgt_embed.weight"][prev], ctx])
        z = w_ih @ xin + w_hh @ h + b
        i, f, zg, o = _sig(z[:D]), _sig(z[D : 2 * D]), z[2 * D : 3 * D], _sig(z[3 * D :])
        g = np.tanh(zg)
        c_new = f * c + i * g
        h_new = o * np.tanh(c_new)
        steps.append(dict(a=a, ctx=ctx, xin=xin, i=i, f=f, g=g, zg=zg, c=c_new, c_prev=c,
                          h_prev=h))  # fmt: skip
        h, c, prev = h_new, c_new, int(target[t])
    hc = np.concatenate([h, steps[-1]["ctx"]])
    pre = p["proj.weight"] @ hc + p["proj.bias"]
    out = np.tanh(pre)
    logits = p["head.weight"] @ out + p["head.bias"]
    r_logits = np.zeros_like(logits)
    r_logits[token] = logits[token]
    r_out = lrp_linear(out, p["head.weight"].T, p["head.bias"], logits, r_logits, D, eps, bf)
    r_hc = lrp_linear(hc, p["proj.weight"].T, p["proj.bias"], pre, r_out, len(hc), eps, bf)
    r_h, r_c = r_hc[:D], np.zeros(D)
    r_ctx = {step: r_hc[D:]}
    r_K = np.zeros_like(K)
    r_tok = np.zeros(step + 1)
    E = model.tgt_embed.embedding_dim
    eye, zero = np.identity(D), np.zeros(D)
    for t in reversed(range(step + 1)):
        s = steps[t]
        r_c = r_c + r_h
        r_cprev = lrp_linear(s["f"] * s["c_prev"], eye, zero, s["c"], r_c, 2 * D, eps, bf)
        r_g = lrp_linear(s["i"] * s["g"], eye, zero, s["c"], r_c, 2 * D, eps, bf)
        bg, N = b[2 * D : 3 * D], len(s["xin"]) + D
        r_x = lrp_linear(s["xin"], w_ih[2 * D : 3 * D].T, bg, s["zg"], r_g, N, eps, bf)
        r_h = lrp_linear(s["h_prev"], w_hh[2 * D : 3 * D].T, bg, s["zg"], r_g, N, eps, bf)
        r_c = r_cprev
        r_tok[t] = r_x[:E].sum()
        r_ctx[t] = r_ctx.get(t, 0) + r_x[E:]
        terms = s["a"][:, None] * K  # [n, 2H]: the epsilon rule over the summed terms
        sign = np.where(s["ctx"] >= 0, 1.0, -1.0)
        r_K += (terms + bf * eps * sign / n) / (s["ctx"] + eps * sign) * r_ctx[t]
    r_u = np.concatenate([r_h, r_c])  # tanh passes relevance
    r_last = lrp_linear(last, p["bridge.weight"].T, p["bridge.bias"], u, r_u, 2 * H, eps, bf)
    rx_f, init_f = _lrp_dir("lstm", wf, x, sf, r_K[:, :H], r_last[:H], eps, bf)
    rx_b, init_b = _lrp_dir("lstm", wb, x[::-1], sb, r_K[::-1, H:], r_last[H:], eps, bf)
    rel = (rx_f + rx_b[::-1]).sum(1)
    return rel, r_tok, init_f + init_b, float(logits[token])


def _explain(tiny, step, bias_factor, token=None):
    model, src, lengths, target = tiny
    return explain(
        model.double(),
        src,
        OutputStep(step, token),
        "lrp",
        forward_args=(lengths, target),
        embedding="src_embed",
        bias_factor=bias_factor,
    )


@pytest.mark.parametrize("step", [0, 2])
def test_lrp_conserves_through_the_attention(tiny, step):
    e = _explain(tiny, step, 1.0)
    tokens = e.extras["token_relevance"]["tgt_embed"]  # [batch, decoder steps]
    assert tokens.shape == (2, 4) and float(tokens[:, step + 1 :].abs().sum()) == 0.0
    total = e.attributions.sum(-1) + e.extras["initial_state_relevance"] + tokens.sum(-1)
    torch.testing.assert_close(total, e.output.double(), atol=1e-12, rtol=1e-12)
    assert float(e.delta.abs().max()) < 1e-12
    assert float(e.attributions[1, 3:].abs().sum()) == 0.0  # padding gets nothing
    if step > 0:  # earlier output tokens carry relevance
        assert float(tokens[:, 1 : step + 1].abs().sum()) > 0


@pytest.mark.parametrize(("step", "bias_factor"), [(0, 1.0), (2, 1.0), (3, 0.0)])
def test_lrp_matches_the_reference_loop(tiny, step, bias_factor):
    model, src, lengths, target = tiny
    e = _explain(tiny, step, bias_factor, token=5)
    for row in range(2):
        n = int(lengths[row])
        rel, tok, init, score = _reference(
            model, src[row].numpy(), n, target[row].numpy(), step, 5, 1e-3, bias_factor
        )
        np.testing.assert_allclose(float(e.output[row]), score, rtol=1e-10)
        np.testing.assert_allclose(e.attributions[row, :n].numpy(), rel, atol=1e-10, rtol=1e-8)
        got = e.extras["token_relevance"]["tgt_embed"][row, : step + 1].numpy()
        np.testing.assert_allclose(got, tok, atol=1e-10, rtol=1e-8)
        np.testing.assert_allclose(
            float(e.extras["initial_state_relevance"][row]), init, atol=1e-10, rtol=1e-8
        )
