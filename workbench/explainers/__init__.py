"""Explanations of recurrent models: why a model predicts what it does.

One class per method (settings in the constructor, ``attribute`` computes), all registered
in :data:`METHODS` by name; :func:`explain` is the one-call entry point, also exported as
``workbench.explain`` (this package is ``workbench.explainers``, so the two names never clash).

Methods: ``integrated_gradients``, ``saliency``, ``input_x_gradient``, ``occlusion``,
``lrp``, ``shap``, ``lime``. Faithfulness and sanity checks live in
:mod:`workbench.explainers.metrics`.
"""

from __future__ import annotations

from typing import Any

import torch
from torch import nn

from workbench.explainers import _gradient, _perturbation, lrp  # noqa: F401  (registration)
from workbench.explainers._base import METHODS, Method, get_method, register
from workbench.explainers._explanation import ExplainError, Explanation, OutputStep, Target
from workbench.explainers._gradient import InputXGradient, IntegratedGradients, Saliency
from workbench.explainers._perturbation import LIME, SHAP, Occlusion
from workbench.explainers.lrp import LRP, LRPError

__all__ = [
    "LIME",
    "LRP",
    "METHODS",
    "SHAP",
    "ExplainError",
    "Explanation",
    "InputXGradient",
    "IntegratedGradients",
    "LRPError",
    "Method",
    "Occlusion",
    "OutputStep",
    "Saliency",
    "Target",
    "explain",
    "register",
    "registry",
]


def registry() -> dict[str, type[Method]]:
    """Method name -> class, for pickers, the CLI and contract tests."""
    return dict(METHODS)


def explain(
    model: nn.Module,
    inputs: torch.Tensor,
    target: Any = None,
    method: str = "integrated_gradients",
    *,
    forward_args: tuple = (),
    embedding: str | None = None,
    tokens: Any = None,
    **kwargs: Any,
) -> Explanation:
    """Explain one score per sequence with the method named ``method``.

    Parameters
    ----------
    model : nn.Module
        The unmodified model (in eval mode).
    inputs : torch.Tensor
        Token ids ``[batch, time]`` (the model's ``nn.Embedding`` is found automatically, or
        named with ``embedding``) or float inputs ``[batch, time, feature]``.
    target : None, int, sequence of int, or Target
        ``None`` explains the predicted class (output 0 for regressors); an int an output
        index (class logit; horizon step of a forecaster); one int per sequence; or a
        :class:`Target` naming a recorded quantity, unit and step.
    method : str
        A name from :data:`METHODS`.
    forward_args : tuple
        Further positional forward arguments after ``inputs``.
    embedding : str, optional
        Module path of the embedding that reads the ids.
    tokens : list of list of str or tokenizer, optional
        Token strings kept on the result for display.
    **kwargs
        The method's settings (see its class, e.g. ``n_steps=50`` or ``epsilon=1e-3``);
        every other keyword is passed to the model's forward (e.g. ``lengths=lengths``).

    Returns
    -------
    Explanation

    Examples
    --------
    >>> e = explain(model, ids, target=2, method="lrp", lengths=lengths)  # doctest: +SKIP
    >>> e.top_k(3)                                                       # doctest: +SKIP
    """
    cls = get_method(method)
    names = set(cls.setting_names()) - {"embedding"}
    settings = {k: v for k, v in kwargs.items() if k in names}
    forward_kwargs = {k: v for k, v in kwargs.items() if k not in names}
    try:
        explainer = cls(model, embedding=embedding, **settings)
    except TypeError as err:
        raise ExplainError(f"bad settings for {method}: {err}") from None
    return explainer.attribute(inputs, target, *forward_args, tokens=tokens, **forward_kwargs)
