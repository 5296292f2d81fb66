"""The naming grammar of recorded quantities and the ``names`` filter."""

from __future__ import annotations

import fnmatch
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from torch import nn

from workbench.names import DIRECTIONS  # noqa: F401 (re-exported)
from workbench.recorder import sites as _sites
from workbench.recorder.sites.fused import GRU_QUANTITIES, LSTM_QUANTITIES  # noqa: F401

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
    spec : SiteKind
        Its kind (:mod:`workbench.recorder.sites`).
    """

    name: str
    module: nn.Module
    spec: _sites.SiteKind

    @property
    def kind(self) -> str:
        """``"lstm"``, ``"gru"``, ``"rnn"``, ``"lstm_cell"``, ``"attention"``, ...."""
        return self.spec.kind

    @property
    def hooking(self) -> str:
        """How the recorder hooks in (see :data:`workbench.recorder.sites.HOOKINGS`)."""
        return self.spec.hooking

    def quantity_names(self) -> list[str]:
        """All names this site can record, in a fixed order."""
        return self.spec.names(self.name, self.module)


def find_sites(model: nn.Module, extra: Iterable[str] = ()) -> list[Site]:
    """Find every recordable module of ``model``.

    Parameters
    ----------
    extra : iterable of str
        Paths of further modules whose output is recorded as ``{path}.output``.

    Raises
    ------
    RecordingError
        If the model holds no recordable module, or an ``extra`` path names none.
    """
    if not isinstance(model, nn.Module):
        raise RecordingError(
            f"expected a torch.nn.Module to record, got {type(model).__name__}; "
            "pass the model object itself (e.g. bundle.model)"
        )
    sites = []
    for name, module in model.named_modules():
        kind = _sites.kind_of(module)
        if kind is not None:
            try:
                sites.append(Site(name or type(module).__name__.lower(), module, kind))
                sites[-1].quantity_names()
            except ValueError as e:
                raise RecordingError(str(e)) from None
    sites += _extra_sites(model, extra, {s.name for s in sites})
    if not sites:
        raise RecordingError(
            f"{type(model).__name__} holds no module the recorder can see: no nn.LSTM, nn.GRU, "
            "nn.RNN, nn.LSTMCell, nn.GRUCell, nn.RNNCell or nn.MultiheadAttention. For a "
            "custom recurrent cell or attention, call a workbench.HookPoint on each value you "
            "want recorded, or pass extra=['path.to.module'] to record a module's output."
        )
    seen: dict[str, str] = {}
    for site in sites:
        for n in site.quantity_names():
            if n in seen and seen[n] != site.name:
                raise RecordingError(
                    f"{site.name} and {seen[n]} would both record {n!r}; give one of their "
                    "HookPoints another layer, direction or quantity"
                )
            seen[n] = site.name
    return sites


def _extra_sites(model: nn.Module, extra: Iterable[str], taken: set[str]) -> list[Site]:
    from workbench.recorder.sites.output import OUTPUT

    if isinstance(extra, str):
        extra = [extra]
    modules = dict(model.named_modules())
    out = []
    for path in extra:
        if not isinstance(path, str) or path not in modules or not path:
            shown = ", ".join(n for n in list(modules)[1:9] if n)
            raise RecordingError(
                f"extra={path!r} names no module of {type(model).__name__}; use a path "
                f"from model.named_modules(), e.g. {shown}"
            )
        out.append(Site(f"{path}#output" if path in taken else path, modules[path], OUTPUT))
    return out


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
