"""HookPoint: the recording point a custom module calls."""

from __future__ import annotations

import torch
from torch import nn

from workbench.names import DIRECTIONS, QuantityName


class HookPoint(nn.Module):
    """An identity module that makes a value of a custom module recordable and editable.

    Put one in a custom cell or attention module and call it on the value to expose::

        self.input_gate = HookPoint(layer=layer)
        ...
        i = self.input_gate(torch.sigmoid(z_i))

    Outside a :class:`workbench.Recorder` it returns its input unchanged at the cost of one
    Python call. Inside, the value is recorded and an edit given to
    :func:`workbench.intervene` may replace it.

    Without ``layer`` the value is named ``{module}.{name}`` (the HookPoint's qualified module
    name). With ``layer`` it joins the recurrent grammar,
    ``{module}.{layer}.{direction}.{quantity}``, like a fused ``nn.LSTM``'s gates, and every
    app page (States, Gates, Projection) shows it: ``{module}`` is the path of the module
    holding the HookPoint, without a last ``.{layer}`` (a ``ModuleList`` of per-layer cells
    ``rnn.cells.0``, ``rnn.cells.1`` names ``rnn.cells.0.fwd.input_gate``,
    ``rnn.cells.1.fwd.input_gate``).

    Parameters
    ----------
    batch_first : bool, default True
        Layout of 3-d values: ``[batch, time, units]`` when True, ``[time, batch, units]``
        when False. 2-d values ``[batch, units]`` are steps: each call is one time step.
    layer : int, optional
        The recurrent layer the value belongs to.
    direction : {"fwd", "bwd"}, default "fwd"
        Its direction (with ``layer``).
    quantity : str, optional
        Its quantity (with ``layer``); the HookPoint's attribute name by default. A sigmoid
        gate named ``input_gate``, ``forget_gate``, ``output_gate``, ``reset_gate`` or
        ``update_gate`` is shown on the Gates page.
    """

    def __init__(
        self,
        batch_first: bool = True,
        *,
        layer: int | None = None,
        direction: str = "fwd",
        quantity: str | None = None,
    ) -> None:
        super().__init__()
        if layer is not None and (isinstance(layer, bool) or not isinstance(layer, int)):
            raise ValueError(f"HookPoint layer must be an int >= 0, got {layer!r}")
        if layer is not None and layer < 0:
            raise ValueError(f"HookPoint layer must be an int >= 0, got {layer!r}")
        if direction not in DIRECTIONS:
            raise ValueError(f"HookPoint direction must be 'fwd' or 'bwd', got {direction!r}")
        if quantity is not None and not (isinstance(quantity, str) and quantity.isidentifier()):
            raise ValueError(f"HookPoint quantity must be an identifier, got {quantity!r}")
        self.batch_first = batch_first
        self.layer = layer
        self.direction = direction
        self.quantity = quantity

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` unchanged (recording hooks see and may replace it)."""
        return x

    def name_at(self, path: str) -> str:
        """The name this HookPoint records under when it sits at ``path`` in a model."""
        if self.layer is None:
            return path
        parent, _, attr = path.rpartition(".")
        suffix = f".{self.layer}"
        module = parent[: -len(suffix)] if parent.endswith(suffix) else parent
        if parent == str(self.layer):
            module = ""
        quantity = self.quantity or attr
        try:
            return QuantityName(module, quantity, self.layer, self.direction).format()
        except ValueError:
            raise ValueError(
                f"the HookPoint at {path!r} declares layer={self.layer} but its name "
                f"{quantity!r} is no identifier; pass quantity='...' to name its value"
            ) from None

    def extra_repr(self) -> str:
        text = f"batch_first={self.batch_first}"
        if self.layer is not None:
            text += f", layer={self.layer}, direction={self.direction!r}"
            if self.quantity is not None:
                text += f", quantity={self.quantity!r}"
        return text
