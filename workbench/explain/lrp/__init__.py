"""Layer-wise relevance propagation for recurrent models (Arras et al. 2017/2019)."""

from __future__ import annotations

import contextlib
import math
import numbers
import threading

import torch
from torch import nn

from workbench.explain._base import Method, register
from workbench.explain._explanation import ExplainError
from workbench.explain._problem import Problem, Scorer
from workbench.explain.lrp._mode import LRPMode
from workbench.explain.lrp._rules import LRPError

__all__ = ["LRP", "LRPError", "LRPMode", "relevance"]


# torch's default dtype is process-wide: two LRP runs in threads must not interleave their
# set / restore (which could leave float64 as the default for good)
_DTYPE_LOCK = threading.RLock()


@contextlib.contextmanager
def _default_dtype(dtype: torch.dtype):
    with _DTYPE_LOCK:
        old = torch.get_default_dtype()
        torch.set_default_dtype(dtype)
        try:
            yield
        finally:
            torch.set_default_dtype(old)


@contextlib.contextmanager
def _packing_order(model: nn.Module, mode: LRPMode):
    """Tell the mode the batch order a packed sequence runs in (for initial states)."""

    def pre(module, args):
        first = args[0] if args else None
        order = getattr(first, "sorted_indices", None)
        mode.sorted_indices.append(order)

    def post(module, args, output):
        if mode.sorted_indices:
            mode.sorted_indices.pop()

    from workbench.recorder.sites import kind_of

    handles = []
    for m in model.modules():
        kind = kind_of(m)
        if kind is not None and kind.hooking == "fused":  # nn.LSTM, nn.GRU, nn.RNN
            handles.append(m.register_forward_pre_hook(pre))
            handles.append(m.register_forward_hook(post, always_call=True))
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def relevance(
    problem: Problem,
    scorer: Scorer,
    epsilon: float = 1e-3,
    bias_factor: float = 0.0,
    dtype: torch.dtype = torch.float64,
) -> dict:
    """Run one LRP pass; see :class:`LRP`.

    Returns
    -------
    dict
        ``feature`` ``[batch, time, feature]`` input relevance, ``initial`` ``[batch]``
        relevance that reached initial states, ``score`` ``[batch]`` the explained score
        (computed in ``dtype``).
    """
    if scorer.recorded:
        raise ExplainError(
            "LRP explains model outputs; for a workbench.Target use integrated_gradients, "
            "saliency, input_x_gradient or occlusion"
        )
    model = problem.model
    params = {n: p.detach().to(dtype) for n, p in model.named_parameters()}
    buffers = {
        n: b.detach().to(dtype) if b.is_floating_point() else b for n, b in model.named_buffers()
    }
    x = problem.x.detach().to(dtype).requires_grad_(True)
    mode = LRPMode(epsilon, bias_factor)
    args, kwargs = problem.call_args(x, None)
    with (
        torch.enable_grad(),
        _default_dtype(dtype),
        problem.replaced(x.clone()),
        _packing_order(model, mode),
        mode,
    ):
        out = torch.func.functional_call(model, {**params, **buffers}, args, kwargs)
    score = scorer.from_output(out)
    if not score.requires_grad:
        raise LRPError(
            "the explained score does not depend on the input under LRP's rules; if the "
            "model ends in a sigmoid or softmax, LRP treats it as a gate: return logits"
        )
    mode.warn_unruled()
    leaves = [leaf for leaf, _, _ in mode.state_leaves]
    grads = torch.autograd.grad(score, [x, *leaves], grad_outputs=score.detach(), allow_unused=True)
    feature = grads[0] if grads[0] is not None else torch.zeros_like(x)
    initial = torch.zeros(problem.batch, dtype=dtype, device=x.device)
    for (_, bdim, order), g in zip(mode.state_leaves, grads[1:], strict=True):
        if g is None:
            continue
        per_row = g.movedim(bdim, 0).reshape(g.shape[bdim], -1).sum(1)
        if order is not None:
            per_row = torch.zeros_like(per_row).index_copy(0, order.to(per_row.device), per_row)
        if per_row.shape[0] == problem.batch:
            initial = initial + per_row
    return {"feature": feature, "initial": initial, "score": score.detach()}


@register
class LRP(Method):
    """Layer-wise relevance propagation with the epsilon rule and signal-take-all gates.

    Runs one float64 forward of the unmodified model under :class:`LRPMode` (which routes
    ``nn.Linear``, ``nn.LSTM``, ``nn.GRU``, the cell modules, sums, attention pooling and
    activations to LRP rules) and one backward from the explained logit, with the logit
    itself as the output relevance (all other outputs 0).

    Parameters
    ----------
    model : nn.Module
    epsilon : float, default 1e-3
        Stabiliser ``eps`` of the epsilon rule: a finite number > 0.
    bias_factor : float, default 0.0
        ``0``: biases and stabilisers absorb relevance (Arras et al.); ``1``: they are
        redistributed and relevance is conserved exactly (``delta`` is then rounding error).
    embedding : str, optional

    Notes
    -----
    ``delta`` = ``output - sum(attributions) - extras["initial_state_relevance"]``.
    """

    name = "lrp"
    resolves_features = True
    has_delta = True

    def __init__(
        self,
        model,
        *,
        epsilon: float = 1e-3,
        bias_factor: float = 0.0,
        embedding: str | None = None,
    ) -> None:
        super().__init__(model, embedding=embedding)
        if isinstance(epsilon, bool) or not isinstance(epsilon, numbers.Real):
            raise ExplainError(f"epsilon must be a number > 0, got {epsilon!r}")
        if not math.isfinite(epsilon) or epsilon <= 0:
            raise ExplainError(
                f"epsilon must be a finite number > 0 for the epsilon rule, got {epsilon} "
                "(0 divides by zero where a neuron's input sums to 0; try 1e-3)"
            )
        if not isinstance(bias_factor, numbers.Real) or not math.isfinite(bias_factor):
            raise ExplainError(f"bias_factor must be a finite number, got {bias_factor!r}")
        self.epsilon = float(epsilon)
        self.bias_factor = float(bias_factor)

    def _attribute(self, problem: Problem, scorer: Scorer) -> dict:
        res = relevance(problem, scorer, self.epsilon, self.bias_factor)
        feat = res["feature"] * problem.mask[..., None].to(res["feature"].device)
        attr = feat.sum(-1)
        delta = res["score"] - attr.sum(-1) - res["initial"]
        return {
            "attributions": attr,
            "feature_attributions": feat,
            "output": res["score"],
            "delta": delta,
            "extras": {"initial_state_relevance": res["initial"]},
        }
