"""``nn.MultiheadAttention``: its weights ``[batch, heads, query, key]`` as ``{module}.weights``.

The pre-hook asks the module for per-head weights whatever the caller asked; the hook records
them and gives the caller what it asked for (no weights, or the head average).
"""

from __future__ import annotations

import inspect

import torch
from torch import nn

from workbench.names import QuantityName
from workbench.recorder.sites import SiteKind, register_site

_SIGNATURE = inspect.signature(nn.MultiheadAttention.forward)


class AttentionKind(SiteKind):
    """``nn.MultiheadAttention`` (need_weights is forced on and given back as asked)."""

    kind, modules, hooking, editable = "attention", (nn.MultiheadAttention,), "attention", False

    def names(self, site, module):
        return [QuantityName(site, "weights").format()]

    def attach(self, recorder, site) -> list:
        """Forward pre-hook and hook on the module; returns their handles."""
        (name,) = self.names(site.name, site.module)
        requests: list[tuple[bool, bool]] = []  # what each running call's caller asked for

        def pre(module, args, kwargs):
            if recorder.other_thread():
                return None
            bound = _SIGNATURE.bind(module, *args, **kwargs)
            bound.apply_defaults()
            requests.append(
                (bound.arguments["need_weights"], bound.arguments["average_attn_weights"])
            )
            bound.arguments["need_weights"] = True
            bound.arguments["average_attn_weights"] = False
            return bound.args[1:], dict(bound.kwargs)

        def post(module, args, kwargs, output):
            if recorder.other_thread():
                return None
            need, average = requests.pop() if requests else (True, True)
            attn_out, weights = output
            w = weights if weights.dim() == 4 else weights[None]
            recorder.append(site, {name: w.detach() if not torch.is_grad_enabled() else w})
            if not need:
                return attn_out, None
            return attn_out, weights.mean(dim=-3) if average else weights

        m = site.module
        return [
            m.register_forward_pre_hook(pre, with_kwargs=True),
            m.register_forward_hook(post, with_kwargs=True),
        ]


ATTENTION = register_site(AttentionKind(), builtin=True)
