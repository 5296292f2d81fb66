"""The result type of every explanation method, and the ``Target`` of a recorded quantity."""

from __future__ import annotations

import numbers
from dataclasses import dataclass, field
from typing import Any

import torch


class ExplainError(ValueError):
    """An input, target or setting that an explanation method cannot work with."""


def integer(value: Any, what: str) -> int:
    """``value`` as an int; refuses bools, fractions and non-numbers (never truncates)."""
    if isinstance(value, torch.Tensor) and value.numel() == 1:
        value = value.item()
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ExplainError(f"{what} must be an integer, got {value!r}")
    if not isinstance(value, numbers.Integral) and not float(value).is_integer():
        raise ExplainError(f"{what} must be an integer, got {value!r} (not truncated)")
    return int(value)


@dataclass(frozen=True)
class Target:
    """A recorded quantity to explain instead of a model output.

    Explains *why a hidden unit fired*: the score is ``trace[name][:, step, unit]`` of a
    :func:`workbench.record` run, differentiated through the recurrence.

    Parameters
    ----------
    name : str
        A recorded name, e.g. ``"rnn.1.fwd.cell"`` (see :attr:`workbench.Trace.names`).
    unit : int or sequence of int
        The unit (or units, summed) of that quantity.
    step : int, default -1
        The time step. ``-1`` means each sequence's own last real step (its length minus
        one); other negative values count from the end of the padded time axis.
    """

    name: str
    unit: int | tuple[int, ...] = 0
    step: int = -1

    def __post_init__(self) -> None:
        if not isinstance(self.name, str):
            raise ExplainError(f"Target name must be a str, got {type(self.name).__name__}")
        for u in self.unit if isinstance(self.unit, (list, tuple)) else [self.unit]:
            integer(u, "Target unit")
        integer(self.step, "Target step")

    def units(self) -> list[int]:
        """The units as a list."""
        return (
            [int(u) for u in self.unit]
            if isinstance(self.unit, (list, tuple))
            else [int(self.unit)]
        )

    def __str__(self) -> str:
        return f"{self.name}[unit={self.unit}, step={self.step}]"


@dataclass(frozen=True)
class OutputStep:
    """One step of a sequence output to explain: token ``token``'s logit at step ``step``.

    For models whose output is ``[batch, steps, classes]`` whose steps are not the input's
    time steps: an encoder-decoder's decoder step (phoneme ``t`` of a G2P model, run with
    teacher forcing so every perturbed input decodes the same steps), a char LM's next
    character after position ``step``. Without it such outputs are read at each sequence's
    last real step.

    Parameters
    ----------
    step : int
        The output step; negative values count from the end of the output's step axis.
    token : int, sequence of int, or None
        The class (vocabulary id) whose logit is explained, one for all rows or one per row;
        None explains the argmax at that step.
    """

    step: int
    token: int | tuple[int, ...] | None = None

    def __post_init__(self) -> None:
        integer(self.step, "OutputStep step")
        tokens = self.token if isinstance(self.token, (list, tuple)) else [self.token]
        for t in tokens:
            if t is not None:
                integer(t, "OutputStep token")
        if isinstance(self.token, list):
            object.__setattr__(self, "token", tuple(self.token))

    def __str__(self) -> str:
        return f"output[step={self.step}, token={self.token}]"


@dataclass
class Explanation:
    """Relevance of every input position for one explained score per sequence.

    Attributes
    ----------
    method : str
        The registry name of the method that produced it.
    attributions : torch.Tensor
        ``[batch, time]`` relevance per position (summed over features); zero on padding.
    feature_attributions : torch.Tensor or None
        ``[batch, time, feature]`` where the method resolves features (gradient methods,
        LRP), else None.
    target : Any
        What was explained: ``[batch]`` output indices or a :class:`Target`.
    output : torch.Tensor
        ``[batch]`` the explained score (pre-softmax logit, regression output or recorded
        quantity) on the unperturbed input.
    delta : torch.Tensor or None
        ``[batch]`` completeness error where the method has one: integrated gradients'
        ``sum(attributions) - (F(x) - F(baseline))``, LRP's
        ``output - sum(attributions) - initial-state relevance`` (what biases and
        stabilisers absorbed).
    settings : dict
        The method's settings, as run.
    tokens : list of list of str or None
        ``[batch][time]`` token strings for display.
    lengths : torch.Tensor or None
        ``[batch]`` real lengths (positions past them are padding).
    extras : dict
        Method-specific extra results (e.g. ``initial_state_relevance`` for LRP).
    """

    method: str
    attributions: torch.Tensor
    feature_attributions: torch.Tensor | None
    target: Any
    output: torch.Tensor
    delta: torch.Tensor | None = None
    settings: dict = field(default_factory=dict)
    tokens: list[list[str]] | None = None
    lengths: torch.Tensor | None = None
    extras: dict = field(default_factory=dict)

    @property
    def batch(self) -> int:
        """Number of explained sequences."""
        return int(self.attributions.shape[0])

    def _length(self, b: int) -> int:
        if self.lengths is None:
            return int(self.attributions.shape[1])
        return int(self.lengths[b])

    def top_k(self, k: int = 5, *, index: int = 0, absolute: bool = False) -> list[tuple]:
        """The ``k`` most relevant positions of one sequence.

        Parameters
        ----------
        k : int
            How many positions.
        index : int
            Which sequence of the batch.
        absolute : bool
            Rank by ``|relevance|`` instead of signed relevance.

        Returns
        -------
        list of (position, token or None, relevance)
        """
        if not 0 <= index < self.batch:
            raise ExplainError(f"index {index} out of range for a batch of {self.batch}")
        n = self._length(index)
        a = self.attributions[index, :n].detach().double().cpu()
        order = torch.argsort(a.abs() if absolute else a, descending=True)[:k]
        toks = self.tokens[index] if self.tokens is not None else None
        return [
            (int(p), toks[int(p)] if toks is not None and int(p) < len(toks) else None, float(a[p]))
            for p in order
        ]

    def to_frame(self):
        """One row per (sequence, real position): a pandas DataFrame.

        Columns: ``sequence, position, token, relevance, method, output``.
        """
        import pandas as pd

        rows = []
        a = self.attributions.detach().double().cpu()
        out = self.output.detach().double().cpu()
        for b in range(self.batch):
            toks = self.tokens[b] if self.tokens is not None else None
            for t in range(self._length(b)):
                rows.append(
                    {
                        "sequence": b,
                        "position": t,
                        "token": toks[t] if toks is not None and t < len(toks) else None,
                        "relevance": float(a[b, t]),
                        "method": self.method,
                        "output": float(out[b]),
                    }
                )
        return pd.DataFrame(rows)

    def __repr__(self) -> str:
        shape = tuple(self.attributions.shape)
        return f"Explanation(method={self.method!r}, attributions={shape}, target={self.target})"
