"""Module kinds the recorder sees, one site module each, behind one registry.

A *site kind* says which modules it matches, the quantities it records and how it hooks in:

``"fused"``
    the module calls one fused kernel (``torch._VF.lstm`` ...) that the recorder intercepts;
    the kind parses its arguments into an :class:`~workbench.recorder._call.RnnCall`
    (``parse``) and packs results the way the kernel returns them (``pack``).
``"cell"``
    the same for one step of a cell kernel (``torch._VF.lstm_cell`` ...).
``"attention"``, ``"hookpoint"``, ``"output"``
    forward hooks on the module (attention maps, a HookPoint's value, any module's output).

Built in: ``nn.LSTM``, ``nn.GRU``, ``nn.RNN`` (:mod:`.fused`, :mod:`.rnn`), ``nn.LSTMCell``,
``nn.GRUCell``, ``nn.RNNCell`` (:mod:`.cells`, :mod:`.rnn`), ``nn.MultiheadAttention``
(:mod:`.attention`) and :class:`workbench.HookPoint` (:mod:`.hookpoint`). A kind registered
with :func:`register_site` is matched before them. A recurrent kind whose equations are not
the built-in LSTM/GRU ones gives them as a :class:`Equations` (see :mod:`.rnn`).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from workbench.names import DIRECTIONS, QuantityName

HOOKINGS = ("fused", "cell", "attention", "hookpoint", "output")


class SiteKind:
    """What the recorder knows of one module kind (subclass it, then :func:`register_site`).

    Attributes
    ----------
    kind : str
        The kind's name (``"lstm"``, ``"rnn_cell"`` ...), shown in ``trace.meta``.
    modules : tuple of type
        Module classes it matches (``isinstance``).
    hooking : str
        One of :data:`HOOKINGS`.
    quantities : tuple of str
        Quantities of one layer and direction, in a fixed order (recurrent kinds).
    kernels : tuple of str
        Names of the torch functions the module calls (``"fused"``/``"cell"`` kinds).
    editable : bool
        Whether :func:`workbench.intervene` may edit its values.
    """

    kind: str = ""
    modules: tuple[type, ...] = ()
    hooking: str = "fused"
    quantities: tuple[str, ...] = ()
    kernels: tuple[str, ...] = ()
    editable: bool = True

    def matches(self, module: nn.Module) -> bool:
        """Whether ``module`` is of this kind (exact kinds first: see :func:`register_site`)."""
        return isinstance(module, self.modules)

    def layers(self, module: nn.Module) -> tuple[int, int]:
        """``(layers, directions)`` of a recurrent module."""
        if self.hooking == "cell":
            return 1, 1
        return module.num_layers, 2 if module.bidirectional else 1

    def names(self, site: str, module: nn.Module) -> list[str]:
        """All names a module at path ``site`` records, in a fixed order."""
        layers, directions = self.layers(module)
        return [
            QuantityName(site, q, layer, DIRECTIONS[d]).format()
            for layer in range(layers)
            for d in range(directions)
            for q in self.quantities
        ]

    def check(self, site: str, module: nn.Module) -> str | None:
        """A one-line problem that stops recording this module, or None."""
        return None

    def attach(self, recorder, site) -> list:
        """Hooks of an ``"attention"``/``"hookpoint"``/``"output"`` kind; their handles.

        ``recorder`` offers ``other_thread()``, ``keeps(site)``, ``edit_of(name)``,
        ``steps(site)`` and ``append(site, {name: value})``. Fused and cell kinds are hooked
        by the recorder itself (their kernel call is intercepted).
        """
        raise NotImplementedError(f"the {self.kind!r} kind hooks through its kernel call")

    def mode(self, kernel: str) -> str:
        """The :class:`RnnCall` mode of a kernel this kind calls (``"lstm_cell"`` -> lstm)."""
        return kernel.removesuffix("_cell")


@dataclass(frozen=True)
class Equations:
    """A recurrent mode's equations for the unroll and recover paths (see :mod:`.rnn`).

    Attributes
    ----------
    unroll_direction : callable
        ``(call, params, steps, edits, rows, h0, edit_value) -> (recorded, h_n)``.
    recover_direction : callable
        ``(mode, layer_input, hidden, h_prev, params, mask, check) -> (recorded, error)``.
    """

    unroll_direction: Callable
    recover_direction: Callable


_REGISTRY: list[SiteKind] = []
_BUILTIN: list[SiteKind] = []
_EQUATIONS: dict[str, Equations] = {}


def register_site(kind: SiteKind, *, builtin: bool = False) -> SiteKind:
    """Make the recorder see a module kind; returns ``kind``.

    A user's kind is matched before the built-in ones, the latest first, so a subclass of
    ``nn.LSTM`` with its own forward can be given a kind of its own.
    """
    if not isinstance(kind, SiteKind):
        raise TypeError(f"register_site needs a SiteKind instance, got {type(kind).__name__}")
    if kind.hooking not in HOOKINGS:
        raise ValueError(f"hooking must be one of {HOOKINGS}, got {kind.hooking!r}")
    if builtin:
        _BUILTIN.append(kind)
    else:
        _REGISTRY.insert(0, kind)
    return kind


def unregister_site(kind: SiteKind) -> None:
    """Undo :func:`register_site` of a user's kind (no error when it is not registered)."""
    if kind in _REGISTRY:
        _REGISTRY.remove(kind)


def register_equations(mode: str, equations: Equations) -> None:
    """Equations of a recurrent kernel mode other than ``lstm`` / ``gru``."""
    _EQUATIONS[mode] = equations


def equations(mode: str) -> Equations | None:
    """The registered equations of ``mode`` (None for the built-in LSTM and GRU)."""
    _load_builtins()
    return _EQUATIONS.get(mode)


def kind_of(module: nn.Module) -> SiteKind | None:
    """The site kind matching ``module``, or None."""
    _load_builtins()
    for kind in (*_REGISTRY, *_BUILTIN):
        if kind.matches(module):
            return kind
    return None


def kinds() -> list[SiteKind]:
    """Every registered kind, in matching order."""
    _load_builtins()
    return [*_REGISTRY, *_BUILTIN]


_LOADED: list[bool] = []


def _load_builtins() -> None:
    if _LOADED:
        return
    _LOADED.append(True)
    from workbench.recorder.sites import attention, cells, fused, hookpoint, rnn  # noqa: F401
