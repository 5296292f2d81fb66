"""The one name type of recorded quantities: ``{module}.{layer}.{direction}.{quantity}``.

Every layer (recorder, trace, store, app, report) parses and makes names through
:class:`QuantityName`, so the grammar lives here alone. Pure Python: importing it loads
neither torch nor numpy.

Examples
--------
>>> n = QuantityName.parse("encoder.rnn.1.bwd.forget_gate")
>>> n.module, n.layer, n.direction, n.quantity, n.is_gate
('encoder.rnn', 1, 'bwd', 'forget_gate', True)
>>> n.group
'encoder.rnn.1'
>>> QuantityName.parse("attn.weights").kind
'attention'
"""

from __future__ import annotations

import re
from dataclasses import dataclass

#: Directions of a recurrent layer, in the order the fused kernels lay them out.
DIRECTIONS = ("fwd", "bwd")
#: Quantities that are sigmoid gates in ``[0, 1]`` (saturation statistics, unsigned scales).
GATES = frozenset({"input_gate", "forget_gate", "output_gate", "reset_gate", "update_gate"})
#: Name kinds: a per-step recurrent quantity, an attention map, any other recorded value.
KINDS = ("recurrent", "attention", "value")

_RECURRENT = re.compile(
    r"^(?:(?P<module>.+)\.)?(?P<layer>\d+)\.(?P<direction>fwd|bwd)\.(?P<quantity>[A-Za-z_]\w*)$"
)
_IDENTIFIER = re.compile(r"^[A-Za-z_]\w*$")


class NameParseError(ValueError):
    """A string that is not a recorded quantity's name."""


@dataclass(frozen=True, order=True)
class QuantityName:
    """A recorded quantity's name, parsed.

    Attributes
    ----------
    module : str
        The recording module's path in the model (``"encoder.rnn"``); may be ``""``.
    quantity : str
        ``"cell"``, ``"forget_gate"``, ``"weights"``, a HookPoint's name ...
    layer : int or None
        Layer of a recurrent quantity, None for other values.
    direction : {"fwd", "bwd"} or None
        Direction of a recurrent quantity, None for other values.
    """

    module: str
    quantity: str
    layer: int | None = None
    direction: str | None = None

    def __post_init__(self) -> None:
        if not isinstance(self.quantity, str) or not self.quantity or "." in self.quantity:
            raise NameParseError(
                f"a quantity is a non-empty name without '.', got {self.quantity!r}"
            )
        if self.layer is not None and not _IDENTIFIER.match(self.quantity):
            raise NameParseError(
                f"quantity {self.quantity!r} of a recurrent name must be an identifier "
                "(letters, digits, '_')"
            )
        if (self.layer is None) != (self.direction is None):
            raise NameParseError("a recurrent name needs both a layer and a direction")
        if self.layer is not None and (not isinstance(self.layer, int) or self.layer < 0):
            raise NameParseError(f"layer must be an int >= 0, got {self.layer!r}")
        if self.direction is not None and self.direction not in DIRECTIONS:
            raise NameParseError(f"direction must be 'fwd' or 'bwd', got {self.direction!r}")

    @classmethod
    def parse(cls, name: str) -> QuantityName:
        """Parse ``"rnn.0.fwd.cell"``, ``"attn.weights"`` or ``"cell.score"``.

        Any non-empty string without an empty last part is a name; one that ends in
        ``{layer}.{fwd|bwd}.{identifier}`` is a recurrent one.

        Raises
        ------
        NameParseError
            If ``name`` is empty, not a string, or ends in ``"."``.
        """
        if not isinstance(name, str) or not name:
            raise NameParseError(f"expected a quantity name such as 'rnn.0.fwd.cell', got {name!r}")
        m = _RECURRENT.match(name)
        if m:
            return cls(m["module"] or "", m["quantity"], int(m["layer"]), m["direction"])
        module, _, quantity = name.rpartition(".")
        return cls(module, quantity)

    @classmethod
    def recurrent(cls, module: str, layer: int, direction: int | str, quantity: str):
        """A recurrent quantity; ``direction`` may be the kernel's index 0 / 1."""
        if isinstance(direction, int):
            direction = DIRECTIONS[direction]
        return cls(module, quantity, layer, direction)

    def format(self) -> str:
        """The name as a string (``parse(n.format()) == n``)."""
        parts = [self.module] if self.module else []
        if self.layer is not None:
            parts += [str(self.layer), self.direction]
        return ".".join([*parts, self.quantity])

    __str__ = format

    @property
    def kind(self) -> str:
        """``"recurrent"``, ``"attention"`` (``{module}.weights``) or ``"value"``."""
        if self.layer is not None:
            return "recurrent"
        return "attention" if self.quantity == "weights" else "value"

    @property
    def is_recurrent(self) -> bool:
        """Whether the name has a layer and direction."""
        return self.layer is not None

    @property
    def is_gate(self) -> bool:
        """Whether the quantity is a sigmoid gate (values in ``[0, 1]``)."""
        return self.quantity in GATES

    @property
    def direction_index(self) -> int | None:
        """0 for ``fwd``, 1 for ``bwd`` (the kernel's order), None for other values."""
        return None if self.direction is None else DIRECTIONS.index(self.direction)

    @property
    def group(self) -> str:
        """``{module}.{layer}`` of a recurrent name (the app's "layer"), else the module."""
        if self.layer is None:
            return self.module
        return f"{self.module}.{self.layer}" if self.module else str(self.layer)


def parse(name: str) -> QuantityName:
    """Shorthand for :meth:`QuantityName.parse`."""
    return QuantityName.parse(name)


def try_parse(name: str) -> QuantityName | None:
    """:meth:`QuantityName.parse`, or None for a string that is no name."""
    try:
        return QuantityName.parse(name)
    except NameParseError:
        return None


def quantity(name: str) -> str:
    """The quantity of ``name`` (its last part): ``"cell"`` of ``"rnn.0.fwd.cell"``."""
    return name.rpartition(".")[2]


def is_attention(name: str) -> bool:
    """Whether ``name`` is an attention map ``{module}.weights``."""
    parsed = try_parse(name)
    return parsed is not None and parsed.kind == "attention"


def is_gate(name: str) -> bool:
    """Whether ``name``'s quantity is a sigmoid gate."""
    parsed = try_parse(name)
    return parsed is not None and parsed.is_gate


def recurrent(name: str) -> QuantityName | None:
    """The parsed name when it is a recurrent quantity, else None."""
    parsed = try_parse(name)
    return parsed if parsed is not None and parsed.is_recurrent else None
