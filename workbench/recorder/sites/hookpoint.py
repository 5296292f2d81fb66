""":class:`workbench.HookPoint`: the value a custom module passes through it."""

from __future__ import annotations

from workbench.recorder._hookpoint import HookPoint
from workbench.recorder.sites import SiteKind, register_site


class HookPointKind(SiteKind):
    """A :class:`workbench.HookPoint` (named by :meth:`HookPoint.name_at`)."""

    kind, modules, hooking = "hookpoint", (HookPoint,), "hookpoint"

    def names(self, site, module):
        return [module.name_at(site)]


HOOKPOINT = register_site(HookPointKind(), builtin=True)
