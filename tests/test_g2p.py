"""The grapheme-to-phoneme encoder-decoder: data split, recording against a reference loop,
decoding (greedy, beam versus exhaustive search) and scoring."""

from __future__ import annotations

import itertools
import math

import numpy as np
import pytest
import torch

import workbench
from workbench.models.seq2seq import BOS, EOS, G2P


@pytest.fixture(scope="module")
def tiny():
    torch.manual_seed(0)
    model = G2P(src_vocab=9, tgt_vocab=7, embed=5, hidden=4, dec_hidden=6, attn=3).eval()
    with torch.no_grad():  # a sharper output distribution than the init gives
        model.head.weight.mul_(6.0)
    src = torch.tensor([[2, 3, 4, 5, 6], [7, 8, 2, 0, 0]])
    lengths = torch.tensor([5, 3])
    target = torch.tensor([[4, 5, 6, 3], [6, 4, 3, 0]])
    return model, src, lengths, target


def _lstm_step(x, h, c, w_ih, w_hh, b):
    z = w_ih @ x + w_hh @ h + b
    i, f, g, o = z.chunk(4)
    i, f, g, o = torch.sigmoid(i), torch.sigmoid(f), torch.tanh(g), torch.sigmoid(o)
    c = f * c + i * g
    return dict(input_gate=i, forget_gate=f, cell_input=g, output_gate=o, cell=c), o * torch.tanh(c)


def _reference(model: G2P, src, lengths, target):
    """Float64 loop from the equations: per row, biLSTM, bridge, Bahdanau attention, cell."""
    p = {k: v.double() for k, v in model.state_dict().items()}
    out = []
    for r in range(src.shape[0]):
        n = int(lengths[r])
        x = p["src_embed.weight"][src[r, :n]]
        rec, keys = {}, {}
        for d, sfx, order in (("fwd", "", range(n)), ("bwd", "_reverse", reversed(range(n)))):
            h = c = torch.zeros(model.encoder.hidden_size, dtype=torch.float64)
            steps = {}
            for t in order:
                vals, h = _lstm_step(
                    x[t],
                    h,
                    c,
                    p[f"encoder.weight_ih_l0{sfx}"],
                    p[f"encoder.weight_hh_l0{sfx}"],
                    p[f"encoder.bias_ih_l0{sfx}"] + p[f"encoder.bias_hh_l0{sfx}"],
                )
                c = vals["cell"]
                steps[t] = dict(vals, hidden=h)
            keys[d] = torch.stack([steps[t]["hidden"] for t in range(n)])
            for q in steps[0]:
                rec[f"encoder.0.{d}.{q}"] = torch.stack([steps[t][q] for t in range(n)])
            rec[f"last_{d}"] = h
        K = torch.cat([keys["fwd"], keys["bwd"]], -1)
        hc = torch.tanh(
            p["bridge.weight"] @ torch.cat([rec.pop("last_fwd"), rec.pop("last_bwd")])
            + p["bridge.bias"]
        )
        h, c = hc.chunk(2)
        proj = K @ p["attention.key.weight"].T + p["attention.key.bias"]
        prev, alphas, dec, logits = BOS, [], [], []
        for t in range(target.shape[1]):
            e = torch.tanh(proj + p["attention.query.weight"] @ h) @ p["attention.score.weight"][0]
            a = torch.softmax(e, 0)
            ctx = a @ K
            xin = torch.cat([p["tgt_embed.weight"][prev], ctx])
            vals, h = _lstm_step(
                xin,
                h,
                c,
                p["cell.weight_ih"],
                p["cell.weight_hh"],
                p["cell.bias_ih"] + p["cell.bias_hh"],
            )
            c = vals["cell"]
            o = torch.tanh(p["proj.weight"] @ torch.cat([h, ctx]) + p["proj.bias"])
            logits.append(p["head.weight"] @ o + p["head.bias"])
            alphas.append(a)
            dec.append(dict(vals, hidden=h))
            prev = int(target[r, t])
        rec["attention.weights"] = torch.stack(alphas)
        for q in dec[0]:
            rec[f"cell.0.fwd.{q}"] = torch.stack([s[q] for s in dec])
        rec["logits"] = torch.stack(logits)
        out.append(rec)
    return out


def test_recording_equals_reference_loop(tiny):
    model, src, lengths, target = tiny
    trace = workbench.record(model, src, lengths, target)
    ref = _reference(model, src, lengths, target)
    names = set(trace.names)
    assert {f"cell.0.fwd.{q}" for q in ("input_gate", "forget_gate", "cell", "hidden")} <= names
    assert trace["attention.weights"].shape == (2, 1, target.shape[1], src.shape[1])
    for r, rec in enumerate(ref):
        n = int(lengths[r])
        for name, want in rec.items():
            if name == "logits":
                got = trace.output[r]
            elif name == "attention.weights":
                got = trace[name][r, 0, :, :n]
                assert float(trace[name][r, 0, :, n:].abs().sum()) == 0.0
            elif name.startswith("encoder."):
                got = trace[name][r, :n]
            else:
                got = trace[name][r]
            torch.testing.assert_close(got.double(), want, atol=2e-6, rtol=1e-5, msg=name)


def _exhaustive(model: G2P, src, lengths, max_len: int, vocab: list[int]):
    """Best-scoring sequence ending in ``</s>`` within ``max_len`` steps, by enumeration."""
    best, best_lp = None, -math.inf
    with torch.no_grad():
        for n in range(max_len):
            for body in itertools.product(vocab, repeat=n):
                seq = [*body, EOS]
                logp = torch.log_softmax(model(src, lengths, torch.tensor([seq])), -1)[0]
                lp = float(sum(logp[t, s] for t, s in enumerate(seq)))
                if lp > best_lp:
                    best, best_lp = list(body), lp
    return best, best_lp


def test_beam_agrees_with_exhaustive_search(tiny):
    from workbench.models.seq2seq import beam_search

    model, src, lengths, _ = tiny
    one, n = src[:1, :3], torch.tensor([3])
    vocab = list(range(3, 7))  # </s> and the three "phonemes" (ids 4..6); PAD/UNK/<s> banned
    want, want_lp = _exhaustive(model, one, n, 4, [v for v in vocab if v != EOS])
    beam = beam_search(model, one, n, beam=64, max_steps=4)
    assert beam.best.tokens == want
    assert beam.best.logprob == pytest.approx(want_lp, abs=1e-4)
    # a narrow beam scores no better than exhaustive search
    assert beam_search(model, one, n, beam=1, max_steps=4).best.logprob <= want_lp + 1e-5


def test_greedy_decode_matches_forward_and_beam_one(tiny):
    from workbench.models.seq2seq import beam_search, decode

    model, src, lengths, _ = tiny
    ids, alpha = decode(model, src[:1], lengths[:1], steps=5)
    with torch.no_grad():
        logits = model(src[:1], lengths[:1], steps=5)
    row = logits.argmax(-1)[0].tolist()
    assert ids[0] == (row[: row.index(EOS)] if EOS in row else row)
    torch.testing.assert_close(alpha.sum(-1), torch.ones_like(alpha.sum(-1)))
    b1 = beam_search(model, src[:1], lengths[:1], beam=1, max_steps=5)
    if EOS in row:
        assert b1.best.tokens == ids[0]


def test_split_is_stable_and_disjoint():
    from workbench.data import cmudict

    parts = {s: cmudict.pronunciations(s) for s in cmudict.SPLITS}
    sizes = np.array([len(p) for p in parts.values()], dtype=float)
    np.testing.assert_allclose(sizes / sizes.sum(), [0.8, 0.1, 0.1], atol=0.01)
    assert not set(parts["train"]) & set(parts["test"])
    assert cmudict.split_of("hello") == cmudict.split_of("hello")
    # alternatives kept: some words have two or more pronunciations
    assert sum(len(v) > 1 for v in parts["test"].values()) > 100
    assert all(p.isalpha() for alts in parts["test"].values() for pr in alts for p in pr)


def test_scores_use_the_closest_pronunciation():
    from workbench.models.g2p_train import edit_distance, monotonicity, score

    assert edit_distance("kitten", "sitting") == 3
    words = {"either": [("IY", "DH", "ER"), ("AY", "DH", "ER")], "a": [("AH",)]}
    m = score({"either": ("AY", "DH", "ER"), "a": ("EY",)}, words)
    assert m["wer"] == 0.5 and m["per"] == pytest.approx(1 / 4)
    assert monotonicity([np.eye(3), np.eye(3)[::-1]]) == pytest.approx(2 / 4)


@pytest.mark.parametrize("method", ["integrated_gradients", "occlusion", "saliency", "lrp"])
def test_explain_an_output_step(tiny, method):
    from workbench.explainers import ExplainError, OutputStep, explain

    model, src, lengths, target = tiny
    with torch.no_grad():
        logits = model(src, lengths, target)
    e = explain(
        model, src, OutputStep(1), method, forward_args=(lengths, target), embedding="src_embed"
    )
    want = logits[:, 1].argmax(-1)
    assert e.target == OutputStep(1, tuple(want.tolist()))
    torch.testing.assert_close(
        e.output.double(), logits[torch.arange(2), 1, want].double(), atol=1e-5, rtol=1e-5
    )
    assert e.attributions.shape == src.shape
    assert float(e.attributions[1, 3:].abs().sum()) == 0.0  # padding
    assert float(e.attributions[0].abs().sum()) > 0
    if method == "integrated_gradients":
        assert float(e.delta.abs().max()) < 1e-3 * float(e.output.abs().max() + 1)
    if method == "occlusion":  # the first-order effect of each source character
        problem_free = explain(
            model,
            src,
            OutputStep(-3, 5),
            method,
            forward_args=(lengths, target),
            embedding="src_embed",
        )
        assert problem_free.target.step == 1 and problem_free.target.token == (5, 5)
    with pytest.raises(ExplainError, match="out of range"):
        explain(
            model, src, OutputStep(9), method, forward_args=(lengths, target), embedding="src_embed"
        )


def test_output_step_of_a_char_lm():
    from workbench.explainers import OutputStep, explain
    from workbench.models.architectures import CharLM

    torch.manual_seed(0)
    lm = CharLM(vocab=12, embed=4, hidden=5, layers=1).eval()
    ids = torch.randint(2, 12, (2, 6))
    e = explain(lm, ids, OutputStep(2, 7), "saliency")
    with torch.no_grad():
        want = lm(ids)[0][:, 2, 7]
    torch.testing.assert_close(e.output, want)
    # a char LM's step t depends on characters 0..t only
    assert float(e.attributions[:, 3:].abs().sum()) == 0.0
    assert float(e.attributions[:, :3].abs().sum()) > 0


def test_uniform_attention_edit_equals_flat_scores(tiny):
    """intervene on the attention HookPoint: uniform weights = a model whose scores are 0."""
    import copy

    from workbench.models.g2p_analysis import NAME, permuted_attention, uniform_attention

    model, src, lengths, target = tiny
    out = workbench.intervene(model, src, lengths, target, edits={NAME: uniform_attention()})
    flat = copy.deepcopy(model)
    with torch.no_grad():
        flat.attention.score.weight.zero_()
        want = flat(src, lengths, target)
    torch.testing.assert_close(out.output, want, atol=1e-6, rtol=1e-5)
    w = out[NAME]
    torch.testing.assert_close(w[1, 0, :, :3], torch.full_like(w[1, 0, :, :3], 1 / 3))
    assert float(w[1, 0, :, 3:].abs().sum()) == 0.0
    perm = workbench.intervene(model, src, lengths, target, edits={NAME: permuted_attention(1)})
    orig = workbench.record(model, src, lengths, target)[NAME]
    torch.testing.assert_close(
        perm[NAME].sort(-1).values, orig.sort(-1).values, atol=1e-6, rtol=1e-5
    )  # the same weights, shuffled


def test_attention_versus_attribution_figures(tiny):
    from workbench.models.checkpoint import Bundle
    from workbench.models.g2p_analysis import analyse
    from workbench.models.tokenizer import Tokenizer

    model, *_ = tiny
    tok = Tokenizer(["<pad>", "<unk>", *"abcdefg"], "char")
    bundle = Bundle(model, "g2p", "g2p", tok)
    res = analyse(bundle, ["abc", "gfed"], methods=("occlusion",), max_steps=3)
    assert res["words"] == 2 and 2 <= res["steps"] <= 8
    assert -1 <= res["spearman_occlusion"] <= 1 and 0 <= res["top1_occlusion"] <= 1
    assert 0 <= res["changed_uniform"] <= 1 and 0 <= res["tv_permuted"] <= 1


def test_shipped_g2p_reproduces_its_reported_metrics():
    from workbench.data.cmudict import pronunciations
    from workbench.models.g2p_train import decode_all, score

    bundle = workbench.load("g2p")
    m = bundle.metrics
    assert bundle.kind == "g2p" and bundle.task == "g2p"
    first = dict(list(pronunciations("test").items())[:500])
    preds, attn = decode_all(bundle.model, bundle.tokenizer, bundle.config["phonemes"], first)
    again = score(preds, first)
    assert again["per"] == pytest.approx(m["check_per_first_500"], abs=2e-3)
    assert again["wer"] == pytest.approx(m["check_wer_first_500"], abs=4e-3)
    assert m["test_per"] < m["baseline_nn_per"] / 2 and m["test_wer"] < m["baseline_nn_wer"]
    assert m["attention_monotone"] > 0.9  # G2P attention is near-monotonic
