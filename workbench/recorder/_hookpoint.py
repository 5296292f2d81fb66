"""HookPoint: the recording point a custom module calls."""

from __future__ import annotations

import torch
from torch import nn


class HookPoint(nn.Module):
    """An identity module that makes a value of a custom module recordable and editable.

    Put one in a custom cell or attention module and call it on the value to expose::

        self.input_gate = HookPoint()
        ...
        i = self.input_gate(torch.sigmoid(z_i))

    Outside a :class:`workbench.Recorder` it returns its input unchanged at the cost of one
    Python call. Inside, the value is recorded under the HookPoint's qualified module name
    (``{module}.{name}``) and an edit given to :func:`workbench.intervene` may replace it.

    Parameters
    ----------
    batch_first : bool, default True
        Layout of 3-d values: ``[batch, time, units]`` when True, ``[time, batch, units]``
        when False. 2-d values ``[batch, units]`` are steps: each call is one time step.
    """

    def __init__(self, batch_first: bool = True) -> None:
        super().__init__()
        self.batch_first = batch_first

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """Return ``x`` unchanged (recording hooks see and may replace it)."""
        return x

    def extra_repr(self) -> str:
        return f"batch_first={self.batch_first}"
