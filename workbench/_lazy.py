"""Lazy exports of a package: its public names load their module on first use.

Each ``__init__`` lists its names once and gets ``__getattr__`` and ``__dir__`` from
:func:`exports`, so importing a package never imports torch or its other heavy parts.
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from typing import Any


def exports(package: str, table: dict[str, str], namespace: dict,
            listed: list[str] | None = None) -> tuple[Callable, Callable]:  # fmt: skip
    """``(__getattr__, __dir__)`` for ``package`` whose public names are ``table``.

    Parameters
    ----------
    package : str
        The package's ``__name__`` (in the error message).
    table : dict of str to str
        Public name -> ``"module"`` (the attribute of that name) or ``"module:attribute"``.
    namespace : dict
        The package's ``globals()``: a loaded name is kept there (loads once).
    listed : list of str, optional
        What ``dir()`` shows (default: the names of ``table``).
    """
    shown = sorted(table) if listed is None else list(listed)

    def getattr_(name: str) -> Any:
        if name not in table:
            raise AttributeError(f"module {package!r} has no attribute {name!r}")
        module, _, attr = table[name].partition(":")
        value = getattr(importlib.import_module(module), attr or name)
        namespace[name] = value
        return value

    def dir_() -> list[str]:
        return shown

    return getattr_, dir_
