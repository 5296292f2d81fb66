"""Gradient methods: saliency, input x gradient, integrated gradients (Captum)."""

from __future__ import annotations

from typing import Any

import torch

from workbench.explainers._base import Method, bounded, register
from workbench.explainers._explanation import ExplainError
from workbench.explainers._problem import Problem, Scorer

#: interpolated input values evaluated at once by default (float32: 512 MiB); longer
#: paths run in pieces of this size (Captum's ``internal_batch_size``)
_MAX_PATH_VALUES = 1 << 27


def gradient(scorer: Scorer, x: torch.Tensor, rows=None) -> tuple[torch.Tensor, torch.Tensor]:
    """Scores ``[n]`` and their gradient ``[n, time, feature]`` with respect to ``x``."""
    x = x.detach().clone().requires_grad_(True)
    with torch.enable_grad():
        s = scorer(x, rows)
        if not s.requires_grad:
            raise ExplainError("the explained score does not depend on the inputs")
        (g,) = torch.autograd.grad(s.sum(), x)
    return s.detach(), g


@register
class Saliency(Method):
    """Gradient magnitude (Simonyan et al. 2014).

    ``feature_attributions`` = ``|d score / d x|`` (or the signed gradient with
    ``absolute=False``); ``attributions`` sums them over features.

    Parameters
    ----------
    model : nn.Module
    absolute : bool, default True
        Take the absolute value of the gradient.
    embedding : str, optional
    """

    name = "saliency"
    resolves_features = True

    def __init__(self, model, *, absolute: bool = True, embedding: str | None = None) -> None:
        super().__init__(model, embedding=embedding)
        self.absolute = bool(absolute)

    def _attribute(self, problem: Problem, scorer: Scorer) -> dict:
        s, g = gradient(scorer, problem.x)
        feat = g.abs() if self.absolute else g
        return {"attributions": feat.sum(-1), "feature_attributions": feat, "output": s}


@register
class InputXGradient(Method):
    """Input times gradient (Shrikumar et al. 2016), on the embedding output for ids.

    Parameters
    ----------
    model : nn.Module
    embedding : str, optional
    """

    name = "input_x_gradient"
    resolves_features = True

    def _attribute(self, problem: Problem, scorer: Scorer) -> dict:
        s, g = gradient(scorer, problem.x)
        feat = g * problem.x
        return {"attributions": feat.sum(-1), "feature_attributions": feat, "output": s}


@register
class IntegratedGradients(Method):
    """Integrated gradients (Sundararajan et al. 2017) through Captum.

    For token ids the path runs in the embedding output space (what Captum's
    ``LayerIntegratedGradients`` on the embedding does); for float inputs on the inputs.
    ``delta`` is Captum's convergence delta ``sum(attributions) - (F(x) - F(baseline))``.

    Parameters
    ----------
    model : nn.Module
    baseline : {"pad", "zero", "unk", "mean"}, int, float or tensor, default "pad"
        The reference (see :meth:`Problem.baseline`); ``"pad"`` becomes ``"zero"`` for
        float inputs.
    n_steps : int, default 50
        Steps of the path integral (1 to 10,000).
    integration : str, default "gausslegendre"
        Captum's ``method`` (``"riemann_trapezoid"``, ``"gausslegendre"``, ...).
    internal_batch_size : int, optional
        Rows per forward pass (default: all ``batch * n_steps`` at once, or pieces of at
        most 2**27 input values when that is more).
    pad_id, unk_id : int
        Token ids of PAD and UNK.
    embedding : str, optional
    """

    name = "integrated_gradients"
    resolves_features = True
    has_delta = True

    def __init__(
        self,
        model,
        *,
        baseline: Any = "pad",
        n_steps: int = 50,
        integration: str = "gausslegendre",
        internal_batch_size: int | None = None,
        pad_id: int = 0,
        unk_id: int = 1,
        embedding: str | None = None,
    ) -> None:
        super().__init__(model, embedding=embedding)
        self.baseline = baseline
        self.n_steps = bounded(n_steps, "n_steps", 1)
        self.integration = integration
        if internal_batch_size is not None:
            internal_batch_size = bounded(internal_batch_size, "internal_batch_size", 1)
        self.internal_batch_size = internal_batch_size
        self.pad_id, self.unk_id = pad_id, unk_id

    def _attribute(self, problem: Problem, scorer: Scorer) -> dict:
        from captum.attr import IntegratedGradients as CaptumIG

        kind = self.baseline
        if not problem.is_ids and kind == "pad":
            kind = "zero"
        base = problem.baseline(kind, self.pad_id, self.unk_id)
        ig = CaptumIG(lambda x, rows: scorer(x, rows))
        rows = torch.arange(problem.batch)
        ibs = self.internal_batch_size
        per_row = problem.time * problem.x.shape[-1]
        if ibs is None and problem.batch * self.n_steps * per_row > _MAX_PATH_VALUES:
            ibs = _MAX_PATH_VALUES // per_row  # the path in pieces: memory stays bounded
        if ibs is not None:
            ibs = max(int(ibs), problem.batch)
        with torch.enable_grad():
            attr, delta = ig.attribute(
                problem.x,
                baselines=base,
                additional_forward_args=(rows,),
                n_steps=self.n_steps,
                method=self.integration,
                internal_batch_size=ibs,
                return_convergence_delta=True,
            )
        with torch.no_grad():
            s = scorer(problem.x)
            s_base = scorer(base)
        return {
            "attributions": attr.sum(-1),
            "feature_attributions": attr,
            "output": s,
            "delta": delta,
            "extras": {"baseline_output": s_base.detach()},
        }
