"""Bounds on a build's size parameters and the disk space a store will take.

Every size a caller can ask for is checked before anything is loaded or created, so a
mistyped ``--chunk-tokens 99999999999`` is one clear line instead of a 46 TiB allocation
and a half-created store.
"""

from __future__ import annotations

import math
import os
import shutil
from pathlib import Path

import numpy as np

from workbench.store._layout import StoreError

# (smallest, largest) accepted value of each size parameter of build / record / import
BOUNDS = {
    "chunk_tokens": (1, 1 << 20),
    "segment_tokens": (1, 1 << 24),
    "window": (1, 1 << 16),
    "batch_size": (1, 1 << 14),
    "threads": (1, 1 << 10),
    "max_tokens": (1, 1 << 40),
}
# one chunk file of one quantity may hold at most this many bytes (the build holds a few)
MAX_CHUNK_BYTES = 256 << 20
_FILE_BLOCK = 4096  # file-system block: every chunk file takes whole blocks


def check_size(name: str, value) -> int:
    """``value`` as an int inside :data:`BOUNDS` ``[name]``, else one-line StoreError."""
    lo, hi = BOUNDS[name]
    try:
        number = int(value)
        exact = number == value
    except (TypeError, ValueError, OverflowError):
        exact = False
    if not exact or not lo <= number <= hi:
        flag = name.replace("_", "-")
        raise StoreError(
            f"{name} (--{flag}) must be a whole number from {lo:,} to {hi:,}, got {value!r}"
        )
    return number


def check_chunk_bytes(chunk_tokens: int, units: dict[str, int], dtype: str) -> None:
    """Refuse chunks whose files would each exceed :data:`MAX_CHUNK_BYTES`."""
    widest = max(units.values(), default=0)
    size = chunk_tokens * widest * np.dtype(dtype).itemsize
    if size > MAX_CHUNK_BYTES:
        most = MAX_CHUNK_BYTES // max(widest * np.dtype(dtype).itemsize, 1)
        raise StoreError(
            f"chunk_tokens={chunk_tokens:,} makes chunks of {format_bytes(size)} for "
            f"{widest} units; pass chunk_tokens (--chunk-tokens) of at most {most:,}"
        )


def estimate_bytes(manifest: dict) -> int:
    """Upper estimate of the bytes a build of ``manifest`` writes (peak, while it runs).

    States (edge chunks stored full-size), the token table, meta tracks and document
    columns, every file rounded up to whole blocks, plus the pieces of the chunks that
    segments share, held on disk until the build finishes.
    """
    from workbench.store._build import COLUMN_CHUNKS, TOKEN_COLUMNS

    n, c = int(manifest["n_tokens"]), int(manifest["chunk_tokens"])
    item = np.dtype(manifest["dtype"]).itemsize
    units = manifest["units"]
    state_chunk = [_blocks(c * u * item) for u in units.values()]
    total = math.ceil(n / c) * sum(state_chunk)
    col_rows = c * COLUMN_CHUNKS
    col_chunks = math.ceil(n / col_rows)
    widths = [np.dtype(dt).itemsize for dt, _ in TOKEN_COLUMNS.values()]
    widths += [np.dtype(kind).itemsize for kind in manifest["meta"].values()]
    total += col_chunks * sum(_blocks(col_rows * w) for w in widths)
    total += 4 * _blocks(8 * (int(manifest["n_docs"]) + 1))
    shared = 2 * len(manifest["segments"]) * c * (sum(units.values()) * item + sum(widths))
    arrays = len(units) + len(widths) + 4
    return int(total + shared + arrays * 2 * _FILE_BLOCK)


def check_disk(path: Path, needed: int, what: str = "the store") -> None:
    """Refuse (one line: the estimate and the free space) when ``path``'s disk lacks room."""
    here = Path(path).absolute()
    while not here.exists() and here != here.parent:
        here = here.parent
    free = free_bytes(here)
    if needed > free:
        raise StoreError(
            f"{what} needs about {format_bytes(needed)} and {here} has "
            f"{format_bytes(free)} free; pass a smaller max_tokens (--max-tokens), fewer "
            "names, float16, or a path on a larger disk"
        )


def free_bytes(path: Path) -> int:
    """Bytes an unprivileged user may still write on ``path``'s file system."""
    if hasattr(os, "statvfs"):
        st = os.statvfs(path)
        return int(st.f_bavail * st.f_frsize)
    return int(shutil.disk_usage(path).free)


def format_bytes(n: float) -> str:
    """``n`` bytes as ``12.3 GB`` (powers of 1000)."""
    for unit in ("B", "kB", "MB", "GB", "TB", "PB"):
        if abs(n) < 1000 or unit == "PB":
            return f"{n:.0f} {unit}" if unit == "B" else f"{n:.1f} {unit}"
        n /= 1000
    return f"{n:.1f} PB"


def _blocks(nbytes: int) -> int:
    return -(-int(nbytes) // _FILE_BLOCK) * _FILE_BLOCK
