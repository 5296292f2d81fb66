"""Layer-wise relevance propagation for recurrent models (Arras et al. 2017/2019)."""

from __future__ import annotations

import contextlib
import math
import numbers
import threading

import torch
from torch import nn

from workbench.explainers._base import Method, register
from workbench.explainers._explanation import ExplainError
from workbench.explainers._problem import Problem, Scorer
from workbench.explainers.lrp._mode import LRPMode
from workbench.explainers.lrp._rules import LRPError

__all__ = ["LRP", "LRPError", "LRPMode", "can_explain", "relevance", "unit_site"]


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


_GATES_MSG = (
    "LRP gives gates no relevance (it treats sigmoid gates as constants), so it cannot "
    "explain {name}; explain that layer's hidden or cell units, or use integrated_gradients, "
    "saliency, input_x_gradient or occlusion"
)


def unit_site(model: nn.Module, name: str) -> tuple[nn.Module, tuple[int, int, str]]:
    """The module and ``(layer, direction, quantity)`` of a recorded name LRP can explain.

    Parameters
    ----------
    model : nn.Module
    name : str
        ``{module}.{layer}.{direction}.{quantity}`` of an ``nn.LSTM`` (``hidden`` or
        ``cell``), ``nn.GRU`` or ``nn.RNN`` (``hidden``).

    Raises
    ------
    LRPError
        For gates, cell modules called step by step, attention and hook points: the message
        says which methods explain them.
    """
    parts = name.rsplit(".", 3)
    others = "integrated_gradients, saliency, input_x_gradient or occlusion"
    if len(parts) != 4 or not parts[1].isdigit() or parts[2] not in ("fwd", "bwd"):
        raise LRPError(f"LRP explains units of recurrent layers, not {name}; use {others}")
    path, layer, direction, quantity = parts
    try:
        module = model.get_submodule(path)
    except AttributeError:
        module = model if path == type(model).__name__.lower() else None
    if not isinstance(module, (nn.LSTM, nn.GRU, nn.RNN)):
        raise LRPError(
            f"LRP explains units of nn.LSTM / nn.GRU / nn.RNN layers; {path} is not one (a cell "
            f"module called step by step runs once per step); use {others}"
        )
    allowed = ("hidden", "cell") if isinstance(module, nn.LSTM) else ("hidden",)
    if quantity not in allowed:
        raise LRPError(_GATES_MSG.format(name=name))
    return module, (int(layer), 1 if direction == "bwd" else 0, quantity)


def can_explain(model: nn.Module, name: str) -> str | None:
    """None when LRP can explain units of ``name``, else the reason it cannot (one line)."""
    try:
        unit_site(model, name)
    except LRPError as err:
        return str(err)
    return None


@contextlib.contextmanager
def _watch_site(module: nn.Module, mode: LRPMode):
    """Mark the unit target's module as running (so the mode reads its layer)."""

    def pre(_module, _args):
        mode.site_active = True

    def post(_module, _args, _output):
        mode.site_active = False

    handles = [module.register_forward_pre_hook(pre),
               module.register_forward_hook(post, always_call=True)]  # fmt: skip
    try:
        yield
    finally:
        for h in handles:
            h.remove()


def _unit_relevance(problem: Problem, target, mode: LRPMode) -> tuple[torch.Tensor, torch.Tensor]:
    """Output relevance of a unit target: each selected unit's own value at its step.

    Returns
    -------
    values : torch.Tensor
        ``[time, batch, units]`` the quantity as the mode computed it (what relevance
        leaves from).
    relevance : torch.Tensor
        Same shape: the selected units' values at the explained step of each sequence, 0
        elsewhere.
    """
    if mode.captured is None:
        raise LRPError(f"the forward pass never ran {target.name}: nothing to explain")
    values, order = mode.captured
    T = values.shape[0]
    B = problem.batch
    inverse = torch.arange(B)
    if order is not None:
        inverse = torch.empty_like(order).index_copy_(0, order, torch.arange(len(order)))
    lengths = problem.lengths if problem.lengths is not None else torch.full((B,), problem.time)
    units = torch.tensor(target.units(), device=values.device)
    rel = torch.zeros_like(values)
    for i in range(B):
        t = int(lengths[i]) - 1 if target.step == -1 else target.step % problem.time
        if t < T:
            b = int(inverse[i])
            rel[t, b, units] = values[t, b, units].detach()
    return values, rel


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
    model = problem.model
    site = unit_site(model, scorer.target.name) if scorer.recorded else None
    params = {n: p.detach().to(dtype) for n, p in model.named_parameters()}
    buffers = {
        n: b.detach().to(dtype) if b.is_floating_point() else b for n, b in model.named_buffers()
    }
    x = problem.x.detach().to(dtype).requires_grad_(True)
    mode = LRPMode(epsilon, bias_factor)
    args, kwargs = problem.call_args(x, None)
    watch = contextlib.nullcontext()
    if site is not None:
        mode.site = site[1]
        watch = _watch_site(site[0], mode)
    with (
        torch.enable_grad(),
        _default_dtype(dtype),
        problem.replaced(x.clone()),
        _packing_order(model, mode),
        watch,
        mode,
    ):
        out = torch.func.functional_call(model, {**params, **buffers}, args, kwargs)
    if site is not None:
        top, r_top = _unit_relevance(problem, scorer.target, mode)
        order = mode.captured[1]
        score = r_top.sum((0, 2))
        if order is not None:  # rows of a packed batch back to the input's order
            score = torch.zeros_like(score).index_copy(0, order.to(score.device), score)
    else:
        score = scorer.from_output(out)
        top, r_top = score, score.detach()
    if not top.requires_grad:
        raise LRPError(
            "the explained score does not depend on the input under LRP's rules; if the "
            "model ends in a sigmoid or softmax, LRP treats it as a gate: return logits"
        )
    mode.warn_unruled()
    leaves = [leaf for leaf, _, _ in mode.state_leaves]
    tokens = [leaf for leaf, _ in mode.token_leaves]
    grads = torch.autograd.grad(top, [x, *leaves, *tokens], grad_outputs=r_top, allow_unused=True)
    feature = grads[0] if grads[0] is not None else torch.zeros_like(x)
    initial = torch.zeros(problem.batch, dtype=dtype, device=x.device)
    token_relevance = _token_relevance(
        mode.token_leaves, grads[1 + len(leaves) :], params, problem.batch
    )
    for (_, bdim, order), g in zip(mode.state_leaves, grads[1 : 1 + len(leaves)], strict=True):
        if g is None:
            continue
        per_row = g.movedim(bdim, 0).reshape(g.shape[bdim], -1).sum(1)
        if order is not None:
            per_row = torch.zeros_like(per_row).index_copy(0, order.to(per_row.device), per_row)
        if per_row.shape[0] == problem.batch:
            initial = initial + per_row
    return {
        "feature": feature,
        "initial": initial,
        "tokens": token_relevance,
        "score": score.detach(),
    }


def _token_relevance(token_leaves, grads, params: dict, batch: int) -> dict:
    """Relevance of constant-id lookups per embedding module: ``{name: [batch, lookups]}``.

    A decoder that embeds its previous token once per step gets one column per step (the
    token fed at step ``t``: ``<s>`` at 0, then the earlier output tokens).
    """
    names = {id(p): n.removesuffix(".weight") for n, p in params.items()}
    found: dict[str, list[torch.Tensor]] = {}
    for (leaf, weight), g in zip(token_leaves, grads, strict=True):
        if g is None or leaf.dim() < 2 or leaf.shape[0] != batch:
            continue
        per = g.sum(-1).reshape(batch, -1)
        found.setdefault(names.get(id(weight), "embedding"), []).append(per)
    return {n: torch.cat(cols, 1).detach() for n, cols in found.items()}


@register
class LRP(Method):
    """Layer-wise relevance propagation with the epsilon rule and signal-take-all gates.

    Runs one float64 forward of the unmodified model under :class:`LRPMode` (which routes
    ``nn.Linear``, ``nn.LSTM``, ``nn.GRU``, the cell modules, sums, attention pooling and
    activations to LRP rules) and one backward from the explained logit, with the logit
    itself as the output relevance (all other outputs 0). A :class:`workbench.Target` on
    the ``hidden`` or ``cell`` units of an ``nn.LSTM`` / ``nn.GRU`` layer is explained the
    same way from that layer: each selected unit's value at the step is its relevance
    (gates get no relevance under these rules, so they cannot be targets).

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
    ``delta`` = ``output - sum(attributions) - extras["initial_state_relevance"]
    - sum(extras["token_relevance"])``.

    Attention weights (a ``softmax``) are treated like gates: they receive no relevance
    and scale the values they weigh, so a context ``c = sum_j alpha_j k_j`` passes its
    relevance to the terms ``alpha_j k_j`` by the epsilon rule and each term's on to
    ``k_j`` (the query and keys of the scores get nothing). An encoder-decoder explained at
    an output step (:class:`workbench.OutputStep`, teacher-forced) thus sends relevance to
    the source positions (``attributions``), the encoder's initial states, and the tokens
    the decoder was fed: ``extras["token_relevance"]`` ``{embedding module: [batch,
    lookups]}``, one column per decoder step (``<s>`` at step 0, then the earlier output
    tokens). At ``bias_factor=1`` these sum to the output up to rounding (terms times a
    zero weight, as at padding, are constants and get no stabiliser share).
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
        tokens = sum((r.sum(-1) for r in res["tokens"].values()), torch.zeros_like(attr[:, 0]))
        delta = res["score"] - attr.sum(-1) - res["initial"] - tokens
        extras = {"initial_state_relevance": res["initial"]}
        if res["tokens"]:
            extras["token_relevance"] = res["tokens"]
        return {
            "attributions": attr,
            "feature_attributions": feat,
            "output": res["score"],
            "delta": delta,
            "extras": extras,
        }
