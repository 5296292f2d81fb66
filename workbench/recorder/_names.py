"""The naming grammar of recorded quantities and the ``names`` filter."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import nn

from workbench.recorder._hookpoint import HookPoint

LSTM_QUANTITIES = ("input_gate", "forget_gate", "cell_input", "output_gate", "cell", "hidden")
GRU_QUANTITIES = ("reset_gate", "update_gate", "new_gate", "hidden")
DIRECTIONS = ("fwd", "bwd")

NameFilter = None | str | Iterable[str] | Callable[[str], bool]


class RecordingError(ValueError):
    """A model, input or name filter that the recorder cannot work with."""


@dataclass(frozen=True)
class Site:
    """One recordable module of a model.

    Attributes
    ----------
    name : str
        The module's qualified name in the model (the class name, lowercased, for the root).
    module : nn.Module
        The module itself.
    kind : str
        ``"lstm"``, ``"gru"``, ``"lstm_cell"``, ``"gru_cell"``, ``"attention"`` or
        ``"hookpoint"``.
    """

    name: str
    module: nn.Module
    kind: str

    def quantity_names(self) -> list[str]:
        """All names this site can record, in a fixed order."""
        if self.kind in ("lstm", "gru"):
            quantities = LSTM_QUANTITIES if self.kind == "lstm" else GRU_QUANTITIES
            directions = DIRECTIONS[: 2 if self.module.bidirectional else 1]
            return [
                f"{self.name}.{layer}.{direction}.{q}"
                for layer in range(self.module.num_layers)
                for direction in directions
                for q in quantities
            ]
        if self.kind in ("lstm_cell", "gru_cell"):
            quantities = LSTM_QUANTITIES if self.kind == "lstm_cell" else GRU_QUANTITIES
            return [f"{self.name}.0.fwd.{q}" for q in quantities]
        if self.kind == "attention":
            return [f"{self.name}.weights"]
        return [self.name]


def _kind(module: nn.Module) -> str | None:
    if isinstance(module, HookPoint):
        return "hookpoint"
    if isinstance(module, nn.LSTM):
        return "lstm"
    if isinstance(module, nn.GRU):
        return "gru"
    if isinstance(module, nn.LSTMCell):
        return "lstm_cell"
    if isinstance(module, nn.GRUCell):
        return "gru_cell"
    if isinstance(module, nn.MultiheadAttention):
        return "attention"
    return None


def find_sites(model: nn.Module) -> list[Site]:
    """Find every recordable module of ``model``.

    Raises
    ------
    RecordingError
        If the model holds no LSTM, GRU, cell, attention or HookPoint module.
    """
    if not isinstance(model, nn.Module):
        raise RecordingError(
            f"expected a torch.nn.Module to record, got {type(model).__name__}; "
            "pass the model object itself (e.g. bundle.model)"
        )
    sites = []
    for name, module in model.named_modules():
        kind = _kind(module)
        if kind is not None:
            sites.append(Site(name or type(module).__name__.lower(), module, kind))
    if not sites:
        raise RecordingError(
            f"{type(model).__name__} holds no module the recorder can see: no nn.LSTM, nn.GRU, "
            "nn.LSTMCell, nn.GRUCell or nn.MultiheadAttention. For a custom recurrent cell or "
            "attention, call a workbench.HookPoint on each value you want recorded."
        )
    return sites


def compile_filter(names: NameFilter) -> Callable[[str], bool]:
    """Turn a ``names`` argument into a predicate on names.

    Parameters
    ----------
    names : None, str, iterable of str, or callable
        None keeps everything; strings are exact names or glob patterns (``"rnn.1.*.cell"``);
        a callable is used as is.
    """
    if names is None:
        return lambda name: True
    if callable(names):
        return names
    patterns = [names] if isinstance(names, str) else list(names)
    for p in patterns:
        if not isinstance(p, str):
            raise RecordingError(f"names must be strings or glob patterns, got {p!r}")
    return lambda name: any(name == p or fnmatch.fnmatchcase(name, p) for p in patterns)


def select(sites: list[Site], names: NameFilter) -> dict[str, list[str]]:
    """Names kept per site (sites with nothing kept are left out).

    Raises
    ------
    RecordingError
        If the filter matches no name; the message lists what can be recorded.
    """
    keep = compile_filter(names)
    chosen = {}
    for site in sites:
        kept = [n for n in site.quantity_names() if keep(n)]
        if kept:
            chosen[site.name] = kept
    if not chosen:
        available = [n for s in sites for n in s.quantity_names()]
        shown = ", ".join(available[:12]) + (" ..." if len(available) > 12 else "")
        raise RecordingError(
            f"the names filter {names!r} matches nothing this model records. "
            f"Available names ({len(available)}): {shown}. Use exact names or glob patterns "
            "such as 'rnn.*.fwd.cell'."
        )
    return chosen
