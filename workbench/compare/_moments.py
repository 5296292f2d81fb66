"""Joint first and second moments of several state matrices, summed block by block.

Every similarity of :mod:`workbench.compare` (linear CKA, SVCCA, unit correlations) is a
function of the centred cross-products ``Xc^T Yc`` of the matrices compared. They are summed
here over blocks of steps, so a store of millions of steps is never loaded whole:

- each block is read feature-major (``[units, steps]``, the layout of a store's chunk files,
  so nothing is transposed) and shifted by the first block's mean while it is cast (the
  shifted-data algorithm: the centred sums then lose no digits to large means);
- the products of a block are computed in float32 for float16/float32 inputs (float64 for
  float64 inputs) and added to float64 sums: only the pairs asked for (CKA of A's layers
  against B's needs ``X^T X``, ``Y^T Y`` and ``X^T Y``, never A's layers against each other);
- a reader thread casts the next block while the products of this one run.
"""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field

import numpy as np

BLOCK = 1 << 15  # steps per block (bench compare: 16k-64k steps are equally fast, 4k slower)
BUFFER_BYTES = 1 << 27  # at most 128 MiB per block buffer (two are alive: read + compute)
PRECISIONS = ("auto", "float32", "float64")


@dataclass
class Moments:
    """Centred cross-products of named matrices over the same steps.

    Attributes
    ----------
    n : int
        Steps summed.
    mean : np.ndarray
        ``[feature]`` means of the concatenated features.
    cross : np.ndarray
        ``[feature, feature]`` centred cross-products ``sum_t (x_t - mean)(x_t - mean)^T``
        (float64), features of all matrices concatenated in ``names`` order; NaN in the
        blocks of pairs that were not summed.
    slices : dict of str to slice
        Where each named matrix's units lie in ``feature``.
    pairs : set of (str, str)
        The pairs of names whose cross-products were summed (both orders).
    """

    n: int
    mean: np.ndarray
    cross: np.ndarray
    slices: dict[str, slice]
    pairs: set = field(default_factory=set)

    def block(self, a: str, b: str) -> np.ndarray:
        """``[units_a, units_b]`` centred cross-products ``Xc_a^T Xc_b``."""
        if self.pairs and (a, b) not in self.pairs:
            raise KeyError(f"the cross-products of {a!r} and {b!r} were not summed")
        return self.cross[self.slices[a], self.slices[b]]

    def variance(self, a: str) -> np.ndarray:
        """``[units_a]`` centred sums of squares (the diagonal of ``Xc_a^T Xc_a``)."""
        return np.diag(self.block(a, a)).copy()


def _pieces(v, a: int, b: int):
    """``(offset, [units, len])`` feature-major pieces of rows ``a:b`` of ``v``."""
    if getattr(v, "unit_major", False):  # a store's chunk files: [units, chunk] each
        c = int(v.chunk)
        for k in range(a // c, (b - 1) // c + 1):
            lo, hi = max(a, k * c), min(b, (k + 1) * c)
            yield lo - a, v.block(k)[:, lo - k * c : hi - k * c]
    else:
        yield 0, np.asarray(v[a:b]).T


def _precision(arrays: dict, precision: str) -> np.dtype:
    if precision not in PRECISIONS:
        raise ValueError(f"precision is one of {', '.join(PRECISIONS)}, got {precision!r}")
    if precision != "auto":
        return np.dtype(precision)
    kinds = {np.dtype(getattr(v, "dtype", np.float64)) for v in arrays.values()}
    small = kinds <= {np.dtype(np.float16), np.dtype(np.float32)}
    return np.dtype(np.float32 if small else np.float64)


def _pairs(names: list, pairs) -> list[tuple[int, int]]:
    index = {k: i for i, k in enumerate(names)}
    if pairs is None:
        return [(i, j) for i in range(len(names)) for j in range(i, len(names))]
    out = set()
    for p, q in pairs:
        if p not in index or q not in index:
            raise KeyError(f"pair ({p!r}, {q!r}) names a matrix not given")
        out.add(tuple(sorted((index[p], index[q]))))
    for i in range(len(names)):  # every matrix's own products: its variances
        out.add((i, i))
    return sorted(out)


def joint_moments(
    arrays: dict,
    steps: int | None = None,
    block: int = BLOCK,
    pairs=None,
    precision: str = "auto",
    overlap: bool = True,
) -> Moments:
    """Sum the centred cross-products of ``arrays`` over their first ``steps`` steps.

    Parameters
    ----------
    arrays : dict of str to array-like
        Name -> ``[time, units]`` (numpy, memmap, store views); all with at least ``steps``
        steps, aligned step by step.
    steps : int, optional
        Steps used (default: the shortest array's length).
    block : int
        Steps read at a time (at most :data:`BUFFER_BYTES` of products' input; the result
        does not depend on it beyond rounding).
    pairs : iterable of (name, name), optional
        The cross-products needed (default: every pair); each matrix's own are always summed.
    precision : {"auto", "float32", "float64"}
        Arithmetic of a block's products (sums are float64 in any case). ``auto``: float32
        when every input is float16 or float32 (their values are exact in float32), else
        float64.
    overlap : bool
        Cast the next block in a reader thread while this block's products run.

    Returns
    -------
    Moments
    """
    import torch

    if not arrays:
        raise ValueError("nothing to compare: give at least one state matrix")
    lengths = {k: int(v.shape[0]) for k, v in arrays.items()}
    n = min(lengths.values()) if steps is None else int(steps)
    if n < 2 or n > min(lengths.values()):
        raise ValueError(
            f"need 2 to {min(lengths.values())} common steps to compare, asked for {n}"
        )
    names = list(arrays)
    slices, at = {}, 0
    for k, v in arrays.items():
        width = int(v.shape[1])
        slices[k] = slice(at, at + width)
        at += width
    dtype = _precision(arrays, precision)
    todo = _pairs(names, pairs)
    block = max(1, min(int(block), BUFFER_BYTES // max(1, at * dtype.itemsize)))
    shift = np.empty(at)
    for k, v in arrays.items():  # the first block's mean, in the products' precision
        first = np.concatenate([p for _, p in _pieces(v, 0, min(block, n))], axis=1)
        shift[slices[k]] = first.mean(axis=1, dtype=np.float64)
    shift = shift.astype(dtype)
    col = shift[:, None]

    def fill(a: int, buf: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        b = min(a + block, n)
        out = buf[:, : b - a]
        for k, v in arrays.items():
            s = slices[k]
            for off, piece in _pieces(v, a, b):
                np.subtract(piece, col[s], out=out[s, off : off + piece.shape[1]])
        return out, out.sum(axis=1, dtype=np.float64)

    total = np.zeros(at)
    cross = np.full((at, at), np.nan)
    for i, j in todo:
        cross[slices[names[i]], slices[names[j]]] = 0.0
    starts = list(range(0, n, block))
    buffers = [np.empty((at, min(block, n)), dtype) for _ in range(2 if overlap else 1)]
    pool = ThreadPoolExecutor(max_workers=1) if overlap and len(starts) > 1 else None
    try:
        pending = fill(starts[0], buffers[0]) if pool is None else None
        future = pool.submit(fill, starts[0], buffers[0]) if pool is not None else None
        for step, a in enumerate(starts):
            if pool is not None:
                x, sums = future.result()
                if step + 1 < len(starts):
                    future = pool.submit(fill, starts[step + 1], buffers[(step + 1) % 2])
            else:
                x, sums = pending if step == 0 else fill(a, buffers[0])
            total += sums
            t = torch.from_numpy(x)
            for i, j in todo:
                si, sj = slices[names[i]], slices[names[j]]
                cross[si, sj] += torch.mm(t[si], t[sj].T).numpy()
    finally:
        if pool is not None:
            pool.shutdown(wait=True)
    for i, j in todo:  # the lower triangle: transposes of the blocks summed
        si, sj = slices[names[i]], slices[names[j]]
        cross[sj, si] = cross[si, sj].T
    mean_shifted = total / n
    cross -= n * np.outer(mean_shifted, mean_shifted)
    done = {(names[i], names[j]) for i, j in todo} | {(names[j], names[i]) for i, j in todo}
    return Moments(n=n, mean=mean_shifted + shift, cross=cross, slices=slices, pairs=done)
