"""Any module's output, recorded by path: ``record(model, ids, extra=["encoder.proj"])``.

For code a user cannot add a :class:`workbench.HookPoint` to. The module's output (its first
tensor when it returns a tuple) is recorded as ``{path}.output``: ``[batch, time, units]``
values as they are (batch first), ``[batch, units]`` values as one step per call.
"""

from __future__ import annotations

import torch

from workbench.names import QuantityName
from workbench.recorder.sites.hookpoint import HookPointKind


class OutputKind(HookPointKind):
    """A module's output; matches no module by type unless a subclass sets ``modules``.

    :func:`find_sites` adds it for the ``extra`` paths; a subclass with ``modules`` registered
    by :func:`register_site` records every such module's output.
    """

    kind, modules, hooking, editable = "output", (), "output", False

    def names(self, site, module):
        return [QuantityName(site.split("#")[0], "output").format()]

    @staticmethod
    def value(output) -> torch.Tensor | None:
        """The tensor recorded of a module's return value: it, or its first tensor."""
        if isinstance(output, torch.Tensor):
            return output
        if isinstance(output, tuple | list):
            return next((o for o in output if isinstance(o, torch.Tensor)), None)
        return None


OUTPUT = OutputKind()
