"""Connectivity over lag (Madsen 2019, "Visualizing memorization in RNNs", Distill).

For the score of the output at a window's last step ``t`` (the log-probability or logit of
the next token), the norm of its gradient with respect to the input embedding at ``t - k``,
for every lag ``k``. One backward pass per batch of windows gives the gradient with respect
to every input position at once (a batched vector-Jacobian product: windows are independent
rows, so the gradient of the batch's summed score is each window's own gradient).
"""

from __future__ import annotations

import contextlib

import numpy as np
import torch
from torch import nn

from workbench.memory._bands import Curve, summarize
from workbench.memory._windows import MAX_STEPS, MAX_WINDOWS, MeasureError, bounded

SCORES = ("logprob", "logit")


def _embedding(model: nn.Module) -> nn.Embedding:
    for m in model.modules():
        if isinstance(m, nn.Embedding):
            return m
    raise MeasureError(
        "the model has no nn.Embedding reading token ids; connectivity needs a token model"
    )


@contextlib.contextmanager
def _leaf_embeddings(model: nn.Module, kept: list):
    """Replace the embedding's output by a leaf tensor that requires grad (hook undone)."""

    def hook(module, args, out):
        leaf = out.detach().requires_grad_(True)
        kept.append(leaf)
        return leaf

    handle = _embedding(model).register_forward_hook(hook)
    try:
        yield
    finally:
        handle.remove()


def _logits(out) -> torch.Tensor:
    logits = out[0] if isinstance(out, (tuple, list)) else out
    if not isinstance(logits, torch.Tensor) or logits.dim() != 3:
        raise MeasureError(
            "connectivity needs a language model returning logits [batch, time, vocab] "
            "(or a tuple starting with them)"
        )
    return logits


def score_of(logits: torch.Tensor, target: torch.Tensor | None, score: str) -> torch.Tensor:
    """``[batch]`` score of the last step: log-prob or logit of ``target`` (argmax if None)."""
    last = logits[:, -1].float() if logits.dtype != torch.float64 else logits[:, -1]
    if target is None:
        target = last.argmax(-1)
    if score == "logprob":
        last = torch.log_softmax(last, -1)
    elif score != "logit":
        raise MeasureError(f"score must be one of {', '.join(SCORES)}, got {score!r}")
    return last.gather(1, target[:, None].to(last.device))[:, 0]


def input_gradients(
    model: nn.Module, ids: torch.Tensor, target: torch.Tensor | None = None, score: str = "logprob"
) -> torch.Tensor:
    """Gradient of each window's last-step score with respect to its input embeddings.

    Parameters
    ----------
    model : nn.Module
        A language model ``model(ids) -> logits [batch, time, vocab]`` (or a tuple starting
        with them), in eval mode.
    ids : torch.Tensor
        ``[batch, time]`` token ids.
    target : torch.Tensor, optional
        ``[batch]`` the token each score is read for (default: the predicted one).
    score : {"logprob", "logit"}

    Returns
    -------
    torch.Tensor
        ``[batch, time, feature]`` gradients (``feature`` = embedding size).
    """
    kept: list[torch.Tensor] = []
    with torch.enable_grad(), _leaf_embeddings(model, kept):
        s = score_of(_logits(model(ids)), target, score)
        (grad,) = torch.autograd.grad(s.sum(), kept[0])
    return grad


def _by_lag(per_position: torch.Tensor) -> np.ndarray:
    """``[batch, time]`` by position -> ``[batch, lag]`` (lag 0 = the last position)."""
    return per_position.flip(1).double().cpu().numpy()


def connectivity(
    model,
    windows: torch.Tensor,
    *,
    score: str = "logprob",
    target: str = "next",
    batch: int = 250,
    band: str = "se",
    lrp: bool = False,
) -> dict[str, Curve]:
    """Connectivity over lag, averaged over windows with 95 % bands.

    Parameters
    ----------
    model : nn.Module or Bundle
        A language model (see :func:`input_gradients`).
    windows : torch.Tensor
        ``[batch, steps + 1]`` ids from :mod:`workbench.memory` (``from_store``,
        ``from_sequences``): the first ``steps`` are fed, the last is the next token.
    score : {"logprob", "logit"}
        What is differentiated at the last step.
    target : {"next", "predicted"}
        Score the true next token or the model's top prediction.
    batch : int
        Windows per backward pass.
    band : {"se", "bootstrap"}
    lrp : bool
        Also the LRP relevance per lag (``|relevance|`` of each position for the target's
        logit, workbench's LRP in float64; slower, for models LRP supports).

    Returns
    -------
    dict of str to Curve
        ``"gradient"``: ``||d score / d x_{t-k}||`` per lag; ``"lrp"`` when asked.

    Examples
    --------
    >>> from workbench import memory                                      # doctest: +SKIP
    >>> w = memory.from_store(store, windows=1000, steps=256)
    >>> curves = memory.connectivity(bundle, w)
    >>> curves["gradient"].horizon(0.1)
    """
    module = getattr(model, "model", model).eval()
    windows = torch.as_tensor(windows)
    if windows.dim() != 2 or windows.shape[1] < 2:
        raise MeasureError(
            f"windows must be ids [batch, steps + 1] with steps >= 1, got {tuple(windows.shape)}"
        )
    bounded(windows.shape[0], "windows", 1, MAX_WINDOWS)
    bounded(windows.shape[1] - 1, "steps", 1, MAX_STEPS)
    batch = bounded(batch, "batch", 1, MAX_WINDOWS)
    if target not in ("next", "predicted"):
        raise MeasureError(f"target must be 'next' or 'predicted', got {target!r}")
    device = next(module.parameters()).device
    grads, rel = [], []
    for lo in range(0, windows.shape[0], batch):
        w = windows[lo : lo + batch].to(device)
        ids, nxt = w[:, :-1], (w[:, -1] if target == "next" else None)
        g = input_gradients(module, ids, nxt, score)
        grads.append(_by_lag(g.norm(dim=-1)))
        if lrp:
            rel.append(_by_lag(lrp_relevance(module, ids, nxt)))
    steps = windows.shape[1] - 1
    meta = {"steps": steps, "score": score, "target": target}
    out = {"gradient": summarize("input gradient norm", np.concatenate(grads), band, **meta)}
    if lrp:
        out["lrp"] = summarize("|LRP relevance|", np.concatenate(rel), band, **meta)
    return out


def lrp_relevance(
    model: nn.Module, ids: torch.Tensor, target: torch.Tensor | None = None
) -> torch.Tensor:
    """``[batch, time]`` ``|relevance|`` of each position for the last step's target logit."""
    from workbench.explainers import explain

    if target is None:
        with torch.no_grad():
            target = _logits(model(ids))[:, -1].argmax(-1)
    e = explain(model, ids, target=[int(t) for t in target], method="lrp")
    return e.attributions.abs()
