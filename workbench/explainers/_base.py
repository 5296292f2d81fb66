"""The base class of every method and the registry that ``explain``, the CLI and tests read."""

from __future__ import annotations

import inspect
import warnings
from typing import Any, ClassVar

import torch
from torch import nn

from workbench.explainers._explanation import ExplainError, Explanation, integer
from workbench.explainers._problem import Problem, Scorer

METHODS: dict[str, type[Method]] = {}

#: upper bounds of the size settings (each one multiplies the model calls or the memory)
LIMITS = {
    "n_steps": 10_000,
    "internal_batch_size": 1_000_000,
    "n_samples": 100_000,
    "max_evals": 100_000,
    "batch_size": 65_536,
    "window": 1_000_000,
    "stride": 1_000_000,
    "points": 10_000,
}


def bounded(value: Any, name: str, low: int) -> int:
    """The size setting ``name`` as an int in ``[low, LIMITS[name]]``, or one clear error."""
    v = integer(value, name)
    high = LIMITS[name]
    if not low <= v <= high:
        raise ExplainError(f"{name} must be between {low} and {high:,}, got {v:,}")
    return v


def warn_if_stochastic(model: nn.Module, method: str) -> None:
    """Warn when ``model`` is in training mode with dropout: results would not repeat."""
    found = []
    for path, m in model.named_modules():
        if not m.training:
            continue
        p = getattr(m, "p", 0.0) if isinstance(m, nn.modules.dropout._DropoutNd) else 0.0
        if isinstance(m, nn.RNNBase) and m.num_layers > 1:
            p = m.dropout
        if p and p > 0:
            found.append(path or type(model).__name__)
    if found:
        warnings.warn(
            f"{type(model).__name__} is in training mode with dropout in "
            f"{', '.join(found[:3])}{' ...' if len(found) > 3 else ''}: every forward draws a "
            f"new mask, so this {method} result is not reproducible; call model.eval() first",
            RuntimeWarning,
            stacklevel=4,
        )


def register(cls: type[Method]) -> type[Method]:
    """Class decorator: add a method to :data:`METHODS` under ``cls.name``."""
    METHODS[cls.name] = cls
    return cls


def get_method(name: str) -> type[Method]:
    """The method class registered as ``name``.

    Raises
    ------
    ExplainError
        If no method has that name; the message lists the valid ones.
    """
    try:
        return METHODS[name]
    except (KeyError, TypeError):
        raise ExplainError(
            f"unknown explanation method {name!r}; valid methods: {', '.join(sorted(METHODS))}"
        ) from None


def tokens_from(tokens: Any, ids: torch.Tensor | None, lengths) -> list[list[str]] | None:
    """Token strings ``[batch][time]`` from a list, a tokenizer (``decode``) or nothing."""
    if tokens is None:
        return None
    if hasattr(tokens, "decode") and ids is not None:
        out = []
        for b, row in enumerate(ids.tolist()):
            n = int(lengths[b]) if lengths is not None else len(row)
            out.append([str(t) for t in tokens.decode(row[:n])])
        return out
    if isinstance(tokens, (list, tuple)) and tokens and isinstance(tokens[0], str):
        return [list(tokens)]
    return [list(map(str, row)) for row in tokens]


class Method:
    """One explanation method: settings in the constructor, :meth:`attribute` computes.

    Parameters
    ----------
    model : nn.Module
        The unmodified model (left in whatever mode it is in; eval mode is expected).
    embedding : str, optional
        Module path of the embedding that reads token ids (found automatically when the
        model has exactly one ``nn.Embedding``).
    """

    name: ClassVar[str] = ""
    #: whether ``feature_attributions`` are filled
    resolves_features: ClassVar[bool] = False
    #: whether ``delta`` is filled
    has_delta: ClassVar[bool] = False

    def __init__(self, model: nn.Module, *, embedding: str | None = None) -> None:
        if not isinstance(model, nn.Module):
            raise ExplainError(f"expected a torch.nn.Module, got {type(model).__name__}")
        self.model = model
        self.embedding = embedding

    @classmethod
    def setting_names(cls) -> list[str]:
        """Names of this method's settings (its constructor's keyword arguments)."""
        sig = inspect.signature(cls.__init__)
        return [p for p in sig.parameters if p not in ("self", "model")]

    def settings(self) -> dict:
        """The settings as run (JSON-friendly values)."""
        out = {}
        for name in self.setting_names():
            v = getattr(self, name, None)
            out[name] = v if isinstance(v, (int, float, str, bool, type(None))) else repr(v)
        return out

    def attribute(
        self, inputs: torch.Tensor, target: Any = None, *args, tokens: Any = None, **kwargs
    ) -> Explanation:
        """Explain ``target`` for ``inputs``.

        Parameters
        ----------
        inputs : torch.Tensor
            Token ids ``[batch, time]`` or float inputs ``[batch, time, feature]``.
        target : None, int, sequence of int or Target
            What to explain (see :func:`workbench.explainers.explain`).
        *args, **kwargs
            Further forward arguments of the model (e.g. ``lengths``), passed through.
        tokens : list of list of str or tokenizer, optional
            Token strings stored on the result for display.

        Returns
        -------
        Explanation
        """
        warn_if_stochastic(self.model, self.name)
        problem = Problem(self.model, inputs, args, kwargs, self.embedding)
        with torch.backends.cudnn.flags(enabled=False):
            scorer = Scorer(problem, target)
            result = self._attribute(problem, scorer)
        mask = problem.mask
        attr = result["attributions"].detach()
        attr = torch.where(mask.to(attr.device), attr, torch.zeros_like(attr))
        feat = result.get("feature_attributions")
        if feat is not None:
            feat = feat.detach() * mask[..., None].to(feat.device)
        return Explanation(
            method=self.name,
            attributions=attr,
            feature_attributions=feat,
            target=scorer.describe(),
            output=result["output"].detach(),
            delta=None if result.get("delta") is None else result["delta"].detach(),
            settings=self.settings(),
            tokens=tokens_from(tokens, problem.ids, problem.lengths),
            lengths=problem.lengths,
            extras=result.get("extras", {}),
        )

    def _attribute(self, problem: Problem, scorer: Scorer) -> dict:  # pragma: no cover
        raise NotImplementedError
