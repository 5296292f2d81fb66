"""Faithfulness and sanity checks for explanations.

- :func:`perturbation_curve` / :func:`aopc`: deletion (most relevant first, MoRF) and
  insertion curves (Petsiuk et al. 2018) and the area over the perturbation curve (Samek et
  al. 2017).
- :func:`eraser`: comprehensiveness and sufficiency (DeYoung et al. 2020) at the top 1, 5,
  10, 20 and 50 % of tokens.
- :func:`rank_agreement`: Spearman correlation and top-k overlap between two explanations.
- :func:`randomisation_check`: Adebayo et al. 2018 cascading parameter randomisation.
- :func:`completeness`: integrated gradients' (or LRP's) completeness error.

A *removed* position takes the ``baseline`` value in input space: by default the PAD
token's embedding for token ids (the same as feeding PAD; positions keep their place, the
sequence length does not change) and the per-feature mean for series. Pass ``baseline=
"unk"`` or ``"zero"`` (zero embedding, Arras et al.) to change it. Scores are the predicted
(explained) class probability for classifiers (``probability=True``), otherwise the
explained score itself.
"""

from __future__ import annotations

import copy
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from workbench.explainers._base import bounded
from workbench.explainers._explanation import ExplainError, Explanation
from workbench.explainers._problem import Problem, Scorer, select_output

ERASER_THRESHOLDS = (0.01, 0.05, 0.10, 0.20, 0.50)


class _Eval:
    """Scores of variants of the explained inputs with sets of positions removed."""

    def __init__(
        self,
        model,
        inputs,
        explanation,
        forward_args,
        forward_kwargs,
        embedding,
        baseline,
        probability,
        batch_size,
    ):
        if not isinstance(explanation, Explanation):
            raise ExplainError("expected an Explanation (from workbench.explain)")
        self.problem = Problem(model, inputs, forward_args, forward_kwargs, embedding)
        if tuple(explanation.attributions.shape) != (self.problem.batch, self.problem.time):
            raise ExplainError(
                f"the explanation is {tuple(explanation.attributions.shape)} but the inputs "
                f"are {(self.problem.batch, self.problem.time)}: pass the inputs it explains"
            )
        self.scorer = Scorer(self.problem, explanation.target)
        kind = baseline if baseline != "auto" else ("pad" if self.problem.is_ids else "mean")
        self.base = self.problem.baseline(kind)
        self.probability = probability
        self.batch_size = bounded(batch_size, "batch_size", 1)
        self.attr = explanation.attributions.detach().double().cpu()
        self.lengths = self.problem.mask.sum(1).cpu()

    def score(self, x: torch.Tensor, rows: torch.Tensor) -> torch.Tensor:
        if self.scorer.recorded or not self.probability:
            return self.scorer(x, rows).double()
        out = select_output(self.problem.run(x, rows))
        if out.dim() == 1 or out.shape[-1] == 1:
            return self.scorer.from_output(out, rows).double()
        probs = torch.softmax(out.double(), -1)
        return self.scorer.from_output(probs, rows)

    @torch.no_grad()
    def masked(self, keep: torch.Tensor) -> torch.Tensor:
        """``keep`` ``[n, batch, time]`` bool -> scores ``[n, batch]``."""
        n, B, T = keep.shape
        keep = keep | ~self.problem.mask.cpu()[None]
        flat = keep.reshape(n * B, T).to(self.problem.x.device)
        rows = torch.arange(B).repeat(n)
        out = []
        for s in range(0, n * B, self.batch_size):
            k = flat[s : s + self.batch_size]
            r = rows[s : s + self.batch_size]
            x = torch.where(k[..., None], self.problem.x[r], self.base[r])
            out.append(self.score(x, r).cpu())
        return torch.cat(out).reshape(n, B)

    def order(self, descending: bool = True) -> torch.Tensor:
        """``[batch, time]`` rank of each position (0 = first removed); padding last."""
        a = self.attr.clone()
        a[~self.problem.mask.cpu()] = -math.inf if descending else math.inf
        idx = torch.argsort(a, dim=1, descending=descending, stable=True)
        rank = torch.empty_like(idx)
        rank.scatter_(1, idx, torch.arange(a.shape[1]).expand_as(idx).contiguous())
        return rank


def perturbation_curve(
    model: nn.Module,
    inputs: torch.Tensor,
    explanation: Explanation,
    *,
    mode: str = "deletion",
    points: int = 11,
    baseline: Any = "auto",
    probability: bool = True,
    forward_args: Sequence = (),
    embedding: str | None = None,
    batch_size: int = 256,
    **forward_kwargs,
) -> dict:
    """Deletion or insertion curve, most relevant positions first.

    Parameters
    ----------
    model, inputs, explanation
        The model, the inputs that ``explanation`` explains (and further forward
        arguments as keywords, e.g. ``lengths``).
    mode : {"deletion", "insertion", "deletion_lerf"}
        ``deletion`` removes the most relevant positions first (the score should fall
        fast); ``insertion`` starts from all removed and restores the most relevant first
        (the score should rise fast); ``deletion_lerf`` removes the least relevant first.
    points : int
        Curve points at fractions ``0, 1/(points-1), ..., 1`` of each sequence's length.
    baseline : "auto", "pad", "unk", "zero", "mean", id or tensor
        What a removed position becomes (see the module docstring).
    probability : bool
        Use the explained class probability (classifiers) instead of the raw score.

    Returns
    -------
    dict
        ``fractions`` ``[points]``, ``scores`` ``[batch, points]``, ``auc`` ``[batch]``
        (trapezoid area over fractions), ``aopc`` ``[batch]`` (mean of
        ``score(0) - score(k)``; for insertion ``score(k) - score(0)``).
    """
    if mode not in ("deletion", "insertion", "deletion_lerf"):
        raise ExplainError(f"mode must be deletion, insertion or deletion_lerf, got {mode!r}")
    points = bounded(points, "points", 2)
    ev = _Eval(
        model,
        inputs,
        explanation,
        forward_args,
        forward_kwargs,
        embedding,
        baseline,
        probability,
        batch_size,
    )
    rank = ev.order(descending=mode != "deletion_lerf")
    fr = torch.linspace(0, 1, points, dtype=torch.float64)
    k = torch.round(fr[:, None] * ev.lengths[None].double()).long()  # [points, batch]
    removed = rank[None] < k[..., None]  # [points, batch, time]
    keep = removed if mode == "insertion" else ~removed
    scores = ev.masked(keep).T  # [batch, points]
    auc = torch.trapezoid(scores, fr, dim=1)
    first = scores[:, :1]
    aopc = (scores - first).mean(1) if mode == "insertion" else (first - scores).mean(1)
    return {"fractions": fr, "scores": scores, "auc": auc, "aopc": aopc, "mode": mode}


def aopc(model, inputs, explanation, **kwargs) -> torch.Tensor:
    """Area over the MoRF deletion curve ``[batch]`` (larger is more faithful)."""
    return perturbation_curve(model, inputs, explanation, mode="deletion", **kwargs)["aopc"]


def eraser(
    model: nn.Module,
    inputs: torch.Tensor,
    explanation: Explanation,
    *,
    thresholds: Sequence[float] = ERASER_THRESHOLDS,
    baseline: Any = "auto",
    probability: bool = True,
    forward_args: Sequence = (),
    embedding: str | None = None,
    batch_size: int = 256,
    **forward_kwargs,
) -> dict:
    """ERASER comprehensiveness and sufficiency at the top ``thresholds`` of tokens.

    ``comprehensiveness = p(x) - p(x without top-k)`` (higher is better) and
    ``sufficiency = p(x) - p(only top-k)`` (lower is better), with ``k = max(1,
    round(q * length))`` for each fraction ``q``; removed positions take the baseline.

    Returns
    -------
    dict
        ``comprehensiveness`` and ``sufficiency`` ``[batch, thresholds]``, their means over
        thresholds (``*_aopc`` ``[batch]``), and ``thresholds``.
    """
    ev = _Eval(
        model,
        inputs,
        explanation,
        forward_args,
        forward_kwargs,
        embedding,
        baseline,
        probability,
        batch_size,
    )
    rank = ev.order()
    q = torch.tensor(list(thresholds), dtype=torch.float64)
    k = torch.round(q[:, None] * ev.lengths[None].double()).long().clamp(min=1)
    top = rank[None] < k[..., None]  # [thresholds, batch, time]
    full = ev.masked(torch.ones(1, *rank.shape, dtype=torch.bool))[0]
    without = ev.masked(~top).T
    only = ev.masked(top).T
    comp = full[:, None] - without
    suff = full[:, None] - only
    return {
        "thresholds": q,
        "comprehensiveness": comp,
        "sufficiency": suff,
        "comprehensiveness_aopc": comp.mean(1),
        "sufficiency_aopc": suff.mean(1),
    }


def _spearman(a: np.ndarray, b: np.ndarray) -> float:
    from scipy.stats import spearmanr

    if len(a) < 2 or np.all(a == a[0]) or np.all(b == b[0]):
        return float("nan")
    return float(spearmanr(a, b).statistic)


def rank_agreement(a: Explanation, b: Explanation, *, k: int = 5, absolute: bool = False) -> dict:
    """Spearman rank correlation and top-``k`` overlap between two explanations.

    Returns
    -------
    dict
        ``spearman`` ``[batch]`` and ``top_k_overlap`` ``[batch]`` (fraction of the top-k
        positions shared), over each sequence's real positions.
    """
    if a.attributions.shape != b.attributions.shape:
        raise ExplainError("the two explanations cover differently shaped inputs")
    rho, overlap = [], []
    for row in range(a.batch):
        n = a._length(row)
        x = a.attributions[row, :n].detach().double().cpu().numpy()
        y = b.attributions[row, :n].detach().double().cpu().numpy()
        if absolute:
            x, y = np.abs(x), np.abs(y)
        rho.append(_spearman(x, y))
        kk = min(k, n)
        tx = set(np.argsort(-x, kind="stable")[:kk].tolist())
        ty = set(np.argsort(-y, kind="stable")[:kk].tolist())
        overlap.append(len(tx & ty) / kk)
    return {
        "spearman": torch.tensor(rho, dtype=torch.float64),
        "top_k_overlap": torch.tensor(overlap, dtype=torch.float64),
    }


def completeness(explanation: Explanation) -> torch.Tensor:
    """Relative completeness error ``|delta| / |F(x) - F(baseline)|`` ``[batch]``.

    For LRP (no baseline) relative to ``|F(x)|``.
    """
    if explanation.delta is None:
        raise ExplainError(f"{explanation.method} has no completeness delta")
    ref = explanation.extras.get("baseline_output")
    gap = explanation.output - ref if ref is not None else explanation.output
    return explanation.delta.abs().double() / gap.abs().double().clamp(min=1e-12)


def _param_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    mods = [
        (n, m) for n, m in model.named_modules() if any(True for _ in m.parameters(recurse=False))
    ]
    return list(reversed(mods))


def randomisation_check(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    method: str = "integrated_gradients",
    *,
    seed: int = 0,
    forward_args: Sequence = (),
    embedding: str | None = None,
    settings: dict | None = None,
    **forward_kwargs,
):
    """Adebayo et al. 2018 cascading parameter randomisation, from the head down.

    Re-initialises the parameters of one module after another (output layer first, on a
    copy of the model; the model itself is untouched) and compares each explanation with
    the original one. A method whose explanations stay similar does not depend on what the
    model learned.

    Returns
    -------
    pandas.DataFrame
        One row per randomised module (cumulative): ``module``, ``spearman`` and
        ``spearman_abs`` (means over the batch) and ``top_k_overlap``.
    """
    import pandas as pd

    from workbench.explainers import explain

    settings = dict(settings or {})

    def run(m):
        return explain(
            m,
            inputs,
            target,
            method,
            forward_args=forward_args,
            embedding=embedding,
            **settings,
            **forward_kwargs,
        )

    original = run(model)
    fixed_target = original.target
    if isinstance(fixed_target, torch.Tensor):
        target = fixed_target
    work = copy.deepcopy(model)
    gen = torch.Generator().manual_seed(seed)
    rows = []
    for name, module in _param_modules(work):
        with torch.no_grad():
            for p in module.parameters(recurse=False):
                std = float(p.detach().float().std()) if p.numel() > 1 else 0.1
                p.copy_(torch.randn(p.shape, generator=gen) * (std or 0.1))
        e = run(work)
        r = rank_agreement(original, e)
        ra = rank_agreement(original, e, absolute=True)
        rows.append(
            {
                "module": name or type(module).__name__,
                "spearman": float(np.nanmean(r["spearman"].numpy())),
                "spearman_abs": float(np.nanmean(ra["spearman"].numpy())),
                "top_k_overlap": float(r["top_k_overlap"].mean()),
            }
        )
    return pd.DataFrame(rows)
