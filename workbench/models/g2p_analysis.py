"""Attention versus attribution on an encoder-decoder.

After Jain & Wallace 2019 and Wiegreffe & Pinter 2019.

Per decoder step of the greedy output: the rank agreement (Spearman) between the attention
over the source characters and each attribution method's absolute relevance of them, and
how the output changes when the attention is replaced by a uniform or a permuted one
(:func:`workbench.intervene` on the ``attention.weights`` HookPoint, teacher-forced on the
greedy output so every step stays comparable).
"""

from __future__ import annotations

import numpy as np
import torch

NAME = "attention.weights"


def uniform_attention():
    """An edit giving every real source position the same weight (padding stays 0)."""

    def edit(value: torch.Tensor, step: int) -> torch.Tensor:
        real = (value > 0).to(value.dtype)
        return real / real.sum(-1, keepdim=True).clamp(min=1)

    return edit


def permuted_attention(seed: int = 0):
    """An edit shuffling the weights among the real source positions.

    The same shuffle for every step of a run (seeded); padding stays 0.
    """

    def edit(value: torch.Tensor, step: int) -> torch.Tensor:
        out = value.clone()
        g = torch.Generator().manual_seed(seed)
        for b in range(value.shape[0]):
            real = torch.nonzero(value[b, 0, 0] > 0).flatten()
            perm = real[torch.randperm(len(real), generator=g)]
            out[b, 0, 0, real] = value[b, 0, 0, perm]
        return out

    return edit


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.ptp(a) == 0 or np.ptp(b) == 0:
        return float("nan")
    return float(spearmanr(a, b).statistic)


def analyse(
    bundle, words, methods=("integrated_gradients", "occlusion"), max_steps: int = 30
) -> dict:
    """Agreement and intervention figures over ``words`` (each decoded greedily).

    The first ``max_steps`` phonemes of each word's greedy output (and its ``</s>``) count.

    Returns
    -------
    dict
        ``spearman_{method}``: mean Spearman correlation of attention and |relevance| over
        the source positions per step; ``top1_{method}``: share of steps whose most attended
        character is the most relevant one; ``changed_{edit}``: share of steps whose argmax
        phoneme changes under the edit; ``tv_{edit}``: mean total-variation distance of the
        step's output distribution; ``steps``: steps counted.
    """
    from workbench import intervene, record
    from workbench.explainers import OutputStep, explain
    from workbench.models.seq2seq import EOS, decode

    model, tok = bundle.model, bundle.tokenizer
    rho = {m: [] for m in methods}
    top1 = {m: [] for m in methods}
    changed = {"uniform": [], "permuted": []}
    tv = {"uniform": [], "permuted": []}
    for k, word in enumerate(words):
        src = torch.tensor([tok.encode(list(word))])
        lengths = torch.tensor([len(word)])
        ids, _ = decode(model, src, lengths)
        target = torch.tensor([[*ids[0][:max_steps], EOS]])
        steps = target.shape[1]
        with torch.no_grad():
            rec = record(model, src, lengths, target, names=[NAME])
        alpha = rec[NAME][:, 0]
        base = torch.softmax(rec.output, -1)[0]
        for m in methods:
            for t in range(steps):
                e = explain(
                    model, src, OutputStep(t), m, forward_args=(lengths, target),
                    embedding="src_embed",
                )  # fmt: skip
                a = alpha[0, t, : len(word)].numpy()
                r = e.attributions[0, : len(word)].abs().double().numpy()
                rho[m].append(_spearman(a, r))
                top1[m].append(float(a.argmax() == r.argmax()))
        for name, edit in (("uniform", uniform_attention()), ("permuted", permuted_attention(k))):
            with torch.no_grad():
                out = intervene(model, src, lengths, target, edits={NAME: edit}, names=[NAME])
            p = torch.softmax(out.output, -1)[0]
            changed[name] += (p.argmax(-1) != base.argmax(-1)).float().tolist()
            tv[name] += (0.5 * (p - base).abs().sum(-1)).tolist()
    res = {"words": len(words), "steps": len(changed["uniform"])}
    for m in methods:
        res[f"spearman_{m}"] = float(np.nanmean(rho[m]))
        res[f"top1_{m}"] = float(np.mean(top1[m]))
    for name in changed:
        res[f"changed_{name}"] = float(np.mean(changed[name]))
        res[f"tv_{name}"] = float(np.mean(tv[name]))
    return res
