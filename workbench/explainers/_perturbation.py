"""Perturbation methods: occlusion, SHAP (Partition / Permutation) and LIME.

A removed position (a token, or a window of time steps for series) gets the baseline value
in input space: the PAD embedding by default for token ids (the same as feeding the PAD
token), the series' per-feature mean for float inputs. Sequence length never changes, so
positions stay aligned (LIME's ``bow=False`` mode).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import torch

from workbench.explainers._base import Method, bounded, register
from workbench.explainers._explanation import ExplainError
from workbench.explainers._problem import Problem, Scorer


def _default_baseline(problem: Problem, kind: Any) -> Any:
    if kind == "auto":
        return "pad" if problem.is_ids else "mean"
    return kind


def segments(length: int, window: int) -> torch.Tensor:
    """``[segment, time]`` bool: consecutive windows of ``window`` steps over ``length``."""
    starts = list(range(0, length, window))
    seg = torch.zeros(len(starts), length, dtype=torch.bool)
    for k, s in enumerate(starts):
        seg[k, s : s + window] = True
    return seg


class _RowModel:
    """Scores of one sequence with some segments replaced by the baseline."""

    def __init__(self, problem, scorer, base, b, window, batch_size) -> None:
        self.problem, self.scorer = problem, scorer
        self.length = int(problem.mask[b].sum())
        self.x = problem.x[b]
        self.base = base[b]
        self.b = b
        self.seg = segments(self.length, window).to(self.x.device)
        self.batch_size = int(batch_size)
        self.calls = 0
        self.rows = 0

    @property
    def n_segments(self) -> int:
        return int(self.seg.shape[0])

    @torch.no_grad()
    def __call__(self, keep: np.ndarray | torch.Tensor) -> np.ndarray:
        """``keep`` ``[n, segment]`` (1 keeps, 0 replaces) -> scores ``[n]``."""
        keep = torch.as_tensor(np.asarray(keep, dtype=np.float32), device=self.x.device)
        keep = keep.reshape(-1, self.n_segments)
        out = []
        for start in range(0, keep.shape[0], self.batch_size):
            k = keep[start : start + self.batch_size]
            kt = (k.to(self.x.dtype) @ self.seg.to(self.x.dtype)) > 0  # [n, length]
            full = torch.ones(k.shape[0], self.x.shape[0], dtype=torch.bool, device=kt.device)
            full[:, : self.length] = kt
            xs = torch.where(full[..., None], self.x[None], self.base[None])
            rows = torch.full((k.shape[0],), self.b, dtype=torch.long)
            out.append(self.scorer(xs, rows).detach().double().cpu())
            self.calls += 1
            self.rows += k.shape[0]
        return torch.cat(out).numpy()

    def spread(self, values: np.ndarray) -> torch.Tensor:
        """Segment values -> ``[time]`` (a window's value shared equally by its steps)."""
        v = torch.as_tensor(np.asarray(values, dtype=np.float64)).reshape(-1)
        seg = self.seg.double().cpu()
        per_step = (v[:, None] * seg / seg.sum(1, keepdim=True)).sum(0)
        out = torch.zeros(self.x.shape[0], dtype=torch.float64)
        out[: self.length] = per_step
        return out


class _Perturbation(Method):
    def _run_rows(self, problem: Problem, scorer: Scorer, fn) -> dict:
        base = problem.baseline(_default_baseline(problem, self.baseline), self.pad_id, self.unk_id)
        attrs, calls, rows = [], 0, 0
        for b in range(problem.batch):
            rm = _RowModel(problem, scorer, base, b, self.window, self.batch_size)
            attrs.append(fn(rm))
            calls, rows = calls + rm.calls, rows + rm.rows
        with torch.no_grad():
            s = scorer(problem.x)
        attr = torch.stack(attrs).to(problem.x.device)
        return {
            "attributions": attr,
            "output": s,
            "extras": {"model_calls": calls, "model_rows": rows},
        }

    def _check_common(self, window: int, batch_size: int) -> None:
        bounded(window, "window", 1)
        bounded(batch_size, "batch_size", 1)


@register
class Occlusion(_Perturbation):
    """Score drop when a window of positions is replaced by the baseline (Zeiler & Fergus).

    ``attributions[t]`` is the mean drop ``F(x) - F(x with window replaced)`` over the
    windows covering ``t`` (Captum's convention).

    Parameters
    ----------
    model : nn.Module
    window : int, default 1
        Positions replaced together.
    stride : int, default 1
    baseline : "auto", "pad", "unk", "zero", "mean", id, float or tensor
        What a removed position becomes; ``"auto"``: PAD for ids, the mean for series.
    batch_size : int, default 256
        Rows per forward pass.
    pad_id, unk_id : int
    embedding : str, optional
    """

    name = "occlusion"

    def __init__(
        self,
        model,
        *,
        window: int = 1,
        stride: int = 1,
        baseline: Any = "auto",
        batch_size: int = 256,
        pad_id: int = 0,
        unk_id: int = 1,
        embedding: str | None = None,
    ) -> None:
        super().__init__(model, embedding=embedding)
        self._check_common(window, batch_size)
        bounded(stride, "stride", 1)
        self.window, self.stride, self.baseline = int(window), int(stride), baseline
        self.batch_size, self.pad_id, self.unk_id = int(batch_size), pad_id, unk_id

    @torch.no_grad()
    def _attribute(self, problem: Problem, scorer: Scorer) -> dict:
        base = problem.baseline(_default_baseline(problem, self.baseline), self.pad_id, self.unk_id)
        B, T = problem.batch, problem.time
        w = min(self.window, T)
        starts = list(range(0, T - w + 1, self.stride))
        if starts[-1] + w < T:
            starts.append(T - w)
        s0 = scorer(problem.x)
        total = torch.zeros(B, T, dtype=torch.float64)
        count = torch.zeros(B, T, dtype=torch.float64)
        per = max(1, self.batch_size // B)
        calls = 0
        for c in range(0, len(starts), per):
            chunk = starts[c : c + per]
            m = torch.zeros(len(chunk), T, dtype=torch.bool)
            for k, s in enumerate(chunk):
                m[k, s : s + w] = True
            m = m.to(problem.x.device)
            xs = torch.where(m[:, None, :, None], base[None], problem.x[None])
            rows = torch.arange(B).repeat(len(chunk))
            sc = scorer(xs.reshape(-1, T, problem.x.shape[-1]), rows).reshape(len(chunk), B)
            drop = (s0[None] - sc).double().cpu()  # [chunk, B]
            mm = m.double().cpu()
            total += drop.T @ mm
            count += torch.ones(B, 1, dtype=torch.float64) @ mm.sum(0, keepdim=True)
            calls += 1
        attr = total / count.clamp(min=1)
        return {
            "attributions": attr.to(problem.x.device),
            "output": s0,
            "extras": {"model_calls": calls},
        }


def _balanced_tree(n: int) -> np.ndarray:
    """A scipy linkage matrix merging neighbouring positions pairwise, level by level."""
    groups = [(i, 1) for i in range(n)]
    rows, nxt, level = [], n, 0
    while len(groups) > 1:
        level += 1
        merged = []
        for k in range(0, len(groups) - 1, 2):
            (a, na), (b, nb) = groups[k], groups[k + 1]
            rows.append([a, b, float(level), na + nb])
            merged.append((nxt, na + nb))
            nxt += 1
        if len(groups) % 2:
            merged.append(groups[-1])
        groups = merged
    return np.asarray(rows, dtype=np.float64).reshape(-1, 4)


class _SegmentMasker:
    """A shap masker over the segments of one sequence: the model sees the mask itself."""

    def __init__(self, n: int, clustering: bool) -> None:
        self.shape = (1, n)
        if clustering:
            self.clustering = _balanced_tree(n)

    def __call__(self, mask, x):
        return (np.asarray(mask, dtype=np.float32).reshape(1, -1),)


@register
class SHAP(_Perturbation):
    """Shapley values over positions (model-agnostic), with the ``shap`` package.

    Features are tokens (or windows of ``window`` time steps of a series); a removed feature
    takes the baseline value. ``algorithm="partition"`` runs ``shap.PartitionExplainer``
    (Owen values over a balanced tree of neighbouring positions, deterministic);
    ``"permutation"`` runs ``shap.PermutationExplainer`` (antithetic permutations, seeded).

    Parameters
    ----------
    model : nn.Module
    max_evals : int, default 500
        Model evaluations per sequence.
    algorithm : {"partition", "permutation"}, default "partition"
    window : int, default 1
    baseline : "auto", "pad", "unk", "zero", "mean", id, float or tensor
    batch_size : int, default 256
        Rows per forward pass.
    seed : int, default 0
    pad_id, unk_id : int
    embedding : str, optional
    """

    name = "shap"

    def __init__(
        self,
        model,
        *,
        max_evals: int = 500,
        algorithm: str = "partition",
        window: int = 1,
        baseline: Any = "auto",
        batch_size: int = 256,
        seed: int = 0,
        pad_id: int = 0,
        unk_id: int = 1,
        embedding: str | None = None,
    ) -> None:
        super().__init__(model, embedding=embedding)
        self._check_common(window, batch_size)
        if algorithm not in ("partition", "permutation"):
            raise ExplainError(f"algorithm must be 'partition' or 'permutation', got {algorithm!r}")
        bounded(max_evals, "max_evals", 4)
        self.max_evals, self.algorithm, self.window = int(max_evals), algorithm, int(window)
        self.baseline, self.batch_size, self.seed = baseline, int(batch_size), int(seed)
        self.pad_id, self.unk_id = pad_id, unk_id

    def _attribute(self, problem: Problem, scorer: Scorer) -> dict:
        from workbench._extras import require

        require("shap")
        import shap

        def row(rm: _RowModel) -> torch.Tensor:
            d = rm.n_segments
            if d == 1:
                return rm.spread(rm(np.ones((1, 1))) - rm(np.zeros((1, 1))))
            masker = _SegmentMasker(d, self.algorithm == "partition")
            ones = np.ones((1, d), dtype=np.float32)
            if self.algorithm == "partition":
                ex = shap.PartitionExplainer(rm, masker)
                res = ex(ones, max_evals=self.max_evals, batch_size=self.batch_size, silent=True)
            else:
                ex = shap.PermutationExplainer(rm, masker, seed=self.seed)
                evals = max(self.max_evals, 2 * d + 1)
                res = ex(ones, max_evals=evals, batch_size=self.batch_size, silent=True)
            return rm.spread(res.values[0])

        return self._run_rows(problem, scorer, row)


@register
class LIME(_Perturbation):
    """LIME (Ribeiro et al. 2016) with positional masking, as ``LimeTextExplainer(bow=False)``.

    Samples switch off a uniform number (1..d) of random positions (or windows), keeping the
    sequence length; a weighted ridge regression (``lime.lime_base.LimeBase``, cosine distance
    x 100, kernel width 25) fits the explained score. The model is called in batches of
    ``batch_size`` rows; sampling is seeded.

    Parameters
    ----------
    model : nn.Module
    n_samples : int, default 1000
    kernel_width : float, default 25
    window : int, default 1
    baseline : "auto", "pad", "unk", "zero", "mean", id, float or tensor
    batch_size : int, default 256
    seed : int, default 0
    pad_id, unk_id : int
    embedding : str, optional
    """

    name = "lime"

    def __init__(
        self,
        model,
        *,
        n_samples: int = 1000,
        kernel_width: float = 25.0,
        window: int = 1,
        baseline: Any = "auto",
        batch_size: int = 256,
        seed: int = 0,
        pad_id: int = 0,
        unk_id: int = 1,
        embedding: str | None = None,
    ) -> None:
        super().__init__(model, embedding=embedding)
        self._check_common(window, batch_size)
        bounded(n_samples, "n_samples", 2)
        if not math.isfinite(float(kernel_width)) or float(kernel_width) <= 0:
            raise ExplainError(f"kernel_width must be a finite number > 0, got {kernel_width}")
        self.n_samples, self.kernel_width, self.window = int(n_samples), kernel_width, int(window)
        self.baseline, self.batch_size, self.seed = baseline, int(batch_size), int(seed)
        self.pad_id, self.unk_id = pad_id, unk_id

    def _attribute(self, problem: Problem, scorer: Scorer) -> dict:
        from workbench._extras import require

        require("lime")
        from lime.lime_base import LimeBase
        from sklearn.metrics import pairwise_distances

        width = float(self.kernel_width)

        def kernel(d):
            return np.sqrt(np.exp(-(d**2) / width**2))

        def row(rm: _RowModel) -> torch.Tensor:
            rng = np.random.RandomState(self.seed)
            d, n = rm.n_segments, self.n_samples
            size = rng.randint(1, d + 1, n - 1)
            rank = np.argsort(rng.rand(n - 1, d), axis=1).argsort(axis=1)
            data = np.ones((n, d))
            data[1:] = (rank >= size[:, None]).astype(float)
            y = rm(data)
            dist = pairwise_distances(data, data[:1], metric="cosine").ravel() * 100
            base = LimeBase(kernel, random_state=rng)
            _, exp, _, _ = base.explain_instance_with_data(
                data, y[:, None], dist, 0, num_features=d, feature_selection="none"
            )
            values = np.zeros(d)
            for k, w in exp:
                values[k] = w
            return rm.spread(values)

        return self._run_rows(problem, scorer, row)
