"""On-disk layout of a state store and fast lazy readers over it.

A store is a zarr v3 group::

    zarr.json                 group attributes: ``workbench_store`` = the manifest
    states/{name}/            [tokens, units] float16 (or float32), chunks (chunk, units)
    tokens/{column}/          [tokens] doc, position, token_id, surface, prediction, loss
    meta/{track}/             [tokens] meta tracks
    docs/{column}/            [docs + 1] offsets, [docs] label, prediction, loss
    _progress/seg*.json       committed segments of a build in progress
    _pending/seg*.npz         a segment's rows in chunks it shares with its neighbours

State chunks are stored unit-major (zarr ``transpose`` codec, then raw little-endian bytes,
no compression), so one chunk file is a C-order ``[units, chunk]`` block: the match search
reads only the selected units of each chunk from memory maps, and a window of rows is a few
short strided reads.
"""

from __future__ import annotations

import contextlib
import json
import os
from pathlib import Path

import numpy as np

SCHEMA_VERSION = 1
MANIFEST_KEY = "workbench_store"


class StoreError(ValueError):
    """A store that cannot be used as asked; the message names the problem and the fix."""


class StoreIncompleteError(StoreError):
    """A store whose build was interrupted; rerun the build with the same arguments."""


def state_codecs():
    """Filters and serializer of a state array: unit-major raw bytes."""
    from zarr.codecs import BytesCodec, TransposeCodec

    return [TransposeCodec(order=(1, 0))], BytesCodec(endian="little")


def create_states(group, name: str, tokens: int, units: int, chunk: int, dtype: str):
    filters, serializer = state_codecs()
    return group.create_array(
        f"states/{name}",
        shape=(tokens, units),
        chunks=(chunk, units),
        dtype=dtype,
        filters=filters,
        serializer=serializer,
        compressors=None,
        fill_value=0,
        config={"write_empty_chunks": True},
        overwrite=True,
    )


def create_column(group, key: str, tokens: int, chunk: int, dtype, fill):
    """A token-table column: raw little-endian chunks, written directly by the build.

    Uncompressed: a column is 4 bytes a token against the states' kilobytes, and zarr's
    per-chunk write path cost the build about 2.5 s per million tokens (with zstd).
    """
    from zarr.codecs import BytesCodec

    return group.create_array(
        key,
        shape=(tokens,),
        chunks=(max(chunk, 1),),
        dtype=dtype,
        serializer=BytesCodec(endian="little"),
        compressors=None,
        fill_value=fill,
        config={"write_empty_chunks": True},
        overwrite=True,
    )


def raw_column(directory: Path) -> bool:
    """Whether the 1-D array stored in ``directory`` keeps raw little-endian chunks ``c/{k}``."""
    try:
        meta = json.loads((Path(directory) / "zarr.json").read_text())
    except (OSError, ValueError):
        return False
    codecs = meta.get("codecs", [])
    return (
        len(meta.get("shape", [])) == 1
        and [c.get("name") for c in codecs] == ["bytes"]
        and codecs[0].get("configuration", {}).get("endian", "little") == "little"
        and meta.get("chunk_key_encoding", {}).get("name") == "default"
        and meta.get("chunk_key_encoding", {}).get("configuration", {}).get("separator", "/") == "/"
    )


def atomic_write_text(path: Path, text: str) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    with _naming(path, tmp):
        with open(tmp, "w") as f:
            f.write(text)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)


def atomic_savez(path: Path, arrays: dict[str, np.ndarray]) -> None:
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp.npz")
    with _naming(path, tmp):
        np.savez(tmp, **arrays)
        os.replace(tmp, path)


@contextlib.contextmanager
def _naming(path: Path, tmp: Path):
    """An OSError without a file name gets ``path``'s; the temp file ``tmp`` is removed."""
    try:
        yield
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None:
            raise OSError(err.errno, err.strerror, str(path)) from err
        raise


class StateArray:
    """Lazy ``[tokens, units]`` view of one recorded quantity of a store.

    Indexing with ``[rows]`` or ``[rows, cols]`` reads only the chunks it touches; the arrays
    are memory-mapped chunk files when the layout allows, else read through zarr.
    """

    def __init__(self, zarray, directory: Path) -> None:
        self._z = zarray
        self.shape = tuple(int(s) for s in zarray.shape)
        self.dtype = np.dtype(zarray.dtype)
        self.chunk = int(zarray.chunks[0])
        self._dir = directory
        self._maps: dict[int, np.ndarray] = {}
        self._raw = self._raw_layout()

    def __len__(self) -> int:
        return self.shape[0]

    def __repr__(self) -> str:
        return f"StateArray(shape={self.shape}, dtype={self.dtype})"

    def _raw_layout(self) -> bool:
        try:
            meta = json.loads((self._dir / "zarr.json").read_text())
        except OSError:
            return False
        codecs = [c.get("name") for c in meta.get("codecs", [])]
        order = meta.get("codecs", [{}])[0].get("configuration", {}).get("order")
        little = meta.get("codecs", [{}, {}])[-1].get("configuration", {}).get("endian")
        return (
            codecs == ["transpose", "bytes"]
            and list(order or []) == [1, 0]
            and little
            in (
                "little",
                None,
            )
        )

    @property
    def unit_major(self) -> bool:
        """Whether every chunk file is a raw ``[units, chunk]`` block :meth:`block` can map."""
        return self._raw

    def block(self, c: int) -> np.ndarray:
        """``[units, chunk]`` block of chunk ``c``, memory-mapped (read by the search kernels).

        Only for stores where :attr:`unit_major` is True.
        """
        return self._chunk(c)

    def _chunk(self, c: int) -> np.ndarray:
        """``[units, chunk]`` block of chunk ``c``."""
        mm = self._maps.get(c)
        if mm is None:
            units = self.shape[1]
            f = self._dir / "c" / str(c) / "0"
            if f.exists():
                expected = units * self.chunk * self.dtype.itemsize
                if f.stat().st_size != expected:
                    raise StoreError(
                        f"chunk file {f} is corrupt ({f.stat().st_size} bytes, expected "
                        f"{expected}); rebuild the store (delete it and run the build again)"
                    )
                mm = np.memmap(f, dtype=self.dtype.newbyteorder("<"), mode="r")
                mm = mm.reshape(units, self.chunk)
            else:  # never written: fill value
                mm = np.zeros((units, self.chunk), self.dtype)
            self._maps[c] = mm
        return mm

    def rows(self, lo: int, hi: int, cols=None) -> np.ndarray:
        """``[hi - lo, units]`` (or ``[hi - lo, len(cols)]``) values of rows ``lo:hi``."""
        lo, hi = max(int(lo), 0), min(int(hi), self.shape[0])
        ncols = self.shape[1] if cols is None else len(cols)
        if hi <= lo:
            return np.zeros((0, ncols), self.dtype)
        if not self._raw:
            block = np.asarray(self._z[lo:hi])
            return block if cols is None else block[:, cols]
        out = np.empty((hi - lo, ncols), self.dtype)
        c = self.chunk
        for k in range(lo // c, (hi - 1) // c + 1):
            a, b = max(lo, k * c), min(hi, (k + 1) * c)
            blk = self._chunk(k)
            blk = (
                blk[:, a - k * c : b - k * c] if cols is None else blk[cols, a - k * c : b - k * c]
            )
            out[a - lo : b - lo] = blk.T
        return out

    def columns_on(self, cells: np.ndarray, threshold: float) -> np.ndarray:
        """``[tokens, k]`` bool: the selected units ``>= threshold`` (exact in any dtype)."""
        from workbench.store.search import _on

        time, c = self.shape[0], self.chunk
        out = np.empty((len(cells), time), dtype=bool)
        for k in range(0, (time + c - 1) // c):
            a, b = k * c, min(time, (k + 1) * c)
            if self._raw:
                blk = self._chunk(k)[cells, : b - a]
            else:
                blk = np.asarray(self._z.oindex[a:b, cells]).T
            out[:, a:b] = _on(blk, threshold)
        return np.ascontiguousarray(out.T)

    def __getitem__(self, key):
        if not isinstance(key, tuple):
            key = (key,)
        rows = key[0]
        cols = key[1] if len(key) > 1 else slice(None)
        if isinstance(rows, int | np.integer):
            return self.rows(int(rows), int(rows) + 1)[0][cols]
        if isinstance(rows, slice):
            lo, hi, step = rows.indices(self.shape[0])
            if isinstance(cols, slice) and cols == slice(None):
                return self.rows(lo, hi)[::step]
            cols_arr = np.arange(self.shape[1])[cols]
            return self.rows(lo, hi, np.atleast_1d(cols_arr))[::step].reshape(
                (len(range(lo, hi, step)),) + np.shape(cols_arr)
            )
        rows = np.asarray(rows)
        return np.stack([self.rows(int(r), int(r) + 1)[0] for r in rows.ravel()])[:, cols]

    def __array__(self, dtype=None, copy=None):
        out = self.rows(0, self.shape[0])
        return out if dtype is None else out.astype(dtype)
