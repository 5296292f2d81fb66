"""Fast writes of whole state chunks, and a background writer that overlaps them with compute.

A state chunk file is the raw little-endian bytes of a C-order ``[units, chunk]`` block (see
:mod:`workbench.store._layout`: zarr ``transpose`` then ``bytes``, no compression; the last
chunk is stored full-size, padded with the fill value 0). Writing those bytes directly costs
one transposing copy and one file write, about half of what zarr's generic write path costs.
Each file is written under a temporary ``*.partial`` name and renamed into place, so a
killed build never leaves a half-written chunk under the real name.
"""

from __future__ import annotations

import os
import queue
import threading
from pathlib import Path

import numpy as np


def write_state_rows(path: Path, name: str, col: np.ndarray, lo: int, hi: int, chunk: int):
    """Write rows ``[lo, hi)`` of state array ``name`` from ``col`` ``[hi - lo, units]``.

    ``lo`` is a chunk boundary and ``hi`` a chunk boundary or the end of the array; ``col``
    is already in the array's dtype.
    """
    import torch

    units = col.shape[1]
    base = Path(path) / "states" / name / "c"
    for start in range(lo, hi, chunk):
        rows = col[start - lo : min(start + chunk, hi) - lo]
        block = np.empty((units, chunk), col.dtype.newbyteorder("<"))
        n = rows.shape[0]
        torch.from_numpy(block[:, :n]).copy_(torch.from_numpy(np.ascontiguousarray(rows)).t())
        if n < chunk:
            block[:, n:] = 0  # the fill value, as zarr stores an edge chunk
        d = base / str(start // chunk)
        d.mkdir(parents=True, exist_ok=True)
        tmp = d / f"0.{os.getpid()}.{threading.get_ident()}.partial"
        with open(tmp, "wb") as f:
            f.write(memoryview(block).cast("B"))
        os.replace(tmp, d / "0")


class BackgroundWriter:
    """Runs write jobs in order in one thread while the caller computes.

    At most ``depth`` jobs wait at a time (``0``: no limit; a job may hold a segment's
    columns in memory); ``submit`` blocks when the queue is full. The first error a job
    raises is raised again by the next ``submit``, :meth:`check` or ``close``; the jobs
    after it are skipped.
    """

    def __init__(self, depth: int = 1) -> None:
        self._q: queue.Queue = queue.Queue(maxsize=depth)
        self._error: BaseException | None = None
        self._thread = threading.Thread(target=self._loop, name="workbench-store-writer")
        self._thread.daemon = True
        self._thread.start()

    def _loop(self) -> None:
        while True:
            job = self._q.get()
            try:
                if job is None:
                    return
                if isinstance(job, threading.Event):  # a mark: everything before it is done
                    job.set()
                elif self._error is None:
                    job()
            except BaseException as err:  # noqa: BLE001 - handed to the caller
                self._error = err
            finally:
                self._q.task_done()

    def check(self) -> None:
        """Raise the first error a job raised (once)."""
        if self._error is not None:
            err, self._error = self._error, None
            raise err

    def submit(self, job) -> None:
        """Queue ``job()`` (a callable) behind the earlier ones."""
        self.check()
        self._q.put(job)

    def mark(self) -> threading.Event:
        """An event set once every job submitted so far has run (or been skipped)."""
        event = threading.Event()
        self._q.put(event)
        return event

    def close(self) -> None:
        """Wait for every queued job, stop the thread, raise the first error."""
        self._q.put(None)
        self._thread.join()
        self.check()
