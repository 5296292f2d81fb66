""":class:`workbench.HookPoint`: the value a custom module passes through it."""

from __future__ import annotations

import torch

from workbench.recorder._hookpoint import HookPoint
from workbench.recorder.sites import SiteKind, register_site


class HookPointKind(SiteKind):
    """A :class:`workbench.HookPoint` (named by :meth:`HookPoint.name_at`)."""

    kind, modules, hooking = "hookpoint", (HookPoint,), "hookpoint"

    def names(self, site, module):
        return [module.name_at(site)]

    @staticmethod
    def value(output) -> torch.Tensor | None:
        """The tensor recorded of the module's return value (a HookPoint returns its input)."""
        return output

    def attach(self, recorder, site) -> list:
        """One forward hook recording (and, with an edit, replacing) the value."""
        (name,) = site.quantity_names()

        def hook(module, args, output):
            if recorder.other_thread():
                return None
            value = self.value(output)
            if value is None:
                return None
            edit = recorder.edit_of(name)
            if edit is not None:
                value = edit(value, recorder.steps(site))
                if not isinstance(value, torch.Tensor) or value.shape != output.shape:
                    raise ValueError(
                        f"the edit for {name!r} must return a tensor shaped {tuple(output.shape)}"
                    )
            if recorder.keeps(site):
                v = value
                if v.dim() == 3 and not getattr(module, "batch_first", True):
                    v = v.transpose(0, 1)
                recorder.append(site, {name: v[:, None] if v.dim() == 2 else v})
            elif edit is not None:
                recorder.append(site, {})
            return value if edit is not None else None

        return [site.module.register_forward_hook(hook)]


HOOKPOINT = register_site(HookPointKind(), builtin=True)
