"""Where the workbench keeps what it builds (demo stores, compiled kernels)."""

from __future__ import annotations

from pathlib import Path

from workbench.config import settings


def cache_root() -> Path:
    """``$WORKBENCH_CACHE``, else ``~/.cache/workbench`` (see :mod:`workbench.config`)."""
    return settings().cache
