"""One clear error for the package paths that became plain function names.

``workbench.explain`` and ``workbench.report`` are functions; their packages are
``workbench.explainers`` and ``workbench.reports``. Importing an old path (``import
workbench.explain.metrics``, ``from workbench.report import matches_section``) raises one line
naming the new path instead of Python's generic "'workbench.explain' is not a package".
"""

from __future__ import annotations

import importlib.abc
import sys
from typing import Any

# old package path -> new package path
MOVED: dict[str, str] = {
    "workbench.explain": "workbench.explainers",
    "workbench.report": "workbench.reports",
}


def moved(fullname: str) -> tuple[str, str] | None:
    """``(old package, new module path)`` for a moved ``fullname``, or None when it did not move."""
    for old, new in MOVED.items():
        if fullname == old or fullname.startswith(old + "."):
            return old, new + fullname[len(old) :]
    return None


class MovedFinder(importlib.abc.MetaPathFinder):
    """A meta path finder that answers only the moved paths, with an error naming the fix."""

    def find_spec(self, fullname: str, path: Any = None, target: Any = None) -> None:
        found = moved(fullname)
        if found is None:
            return None
        old, new = found
        raise ModuleNotFoundError(
            f"{old} is a function, not a package; import {new} instead",
            name=fullname,
        )


def install() -> None:
    """Put one :class:`MovedFinder` first on ``sys.meta_path``.

    First, so that a stale copy of an old package elsewhere (an older editable install) cannot
    answer instead; it answers nothing but the moved paths.
    """
    if not any(isinstance(f, MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, MovedFinder())
