"""``nn.MultiheadAttention``: its weights ``[batch, heads, query, key]`` as ``{module}.weights``."""

from __future__ import annotations

from torch import nn

from workbench.names import QuantityName
from workbench.recorder.sites import SiteKind, register_site


class AttentionKind(SiteKind):
    """``nn.MultiheadAttention`` (need_weights is forced on and given back as asked)."""

    kind, modules, hooking, editable = "attention", (nn.MultiheadAttention,), "attention", False

    def names(self, site, module):
        return [QuantityName(site, "weights").format()]


ATTENTION = register_site(AttentionKind(), builtin=True)
