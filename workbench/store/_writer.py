"""Fast writes of whole state chunks, and a background writer that overlaps them with compute.

A state chunk file is the raw little-endian bytes of a C-order ``[units, chunk]`` block (see
:mod:`workbench.store._layout`: zarr ``transpose`` then ``bytes``, no compression; the last
chunk is stored full-size, padded with the fill value 0). Writing those bytes directly costs
one transposing copy and one file write, about half of what zarr's generic write path costs.
Each file is written under a temporary ``*.partial`` name and renamed into place, so a
killed build never leaves a half-written chunk under the real name.

Chunk blocks are page-aligned and written with ``O_DIRECT`` where the file system takes it:
on this machine's ext4 a buffered write of 600 MB cost 1.1-1.5 s of CPU (page-cache pages
allocated and copied), a direct one 0.04 s of CPU and 0.27 s of wall time, and a store build
writes several times the bytes its model reads. Elsewhere (tmpfs, other systems, odd sizes) the
write is buffered. ``WORKBENCH_DIRECT_IO=0`` turns it off.
"""

from __future__ import annotations

import functools
import os
import queue
import threading
from pathlib import Path

import numpy as np

from workbench.config import settings

_HAS_DIRECT = hasattr(os, "O_DIRECT")
_NO_DIRECT: set[int] = set()  # devices that refused O_DIRECT: buffered writes there
_PAGE = 4096


def write_file(target: Path, data: np.ndarray) -> None:
    """Write ``data``'s bytes to ``target`` atomically (a ``*.partial`` file, then a rename).

    Raises
    ------
    OSError
        As the system raised it, naming ``target`` (a failed ``write`` names no file); the
        partial file is removed.
    """
    tmp = target.with_name(f"{target.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        _write_file(target, tmp, data)
    except OSError as err:
        tmp.unlink(missing_ok=True)
        if err.filename is None:
            raise OSError(err.errno, err.strerror, str(target)) from err
        raise


def _write_file(target: Path, tmp: Path, data: np.ndarray) -> None:
    view = memoryview(data).cast("B")
    aligned = data.ctypes.data % _PAGE == 0 and data.nbytes % _PAGE == 0
    if _HAS_DIRECT and settings().direct_io and aligned:
        dev = os.stat(target.parent).st_dev
        if dev not in _NO_DIRECT and _write_direct(tmp, view):
            os.replace(tmp, target)
            return
        _NO_DIRECT.add(dev)
    with open(tmp, "wb") as f:
        f.write(view)
    os.replace(tmp, target)


def _write_direct(tmp: Path, view: memoryview) -> bool:
    """Write ``view`` to ``tmp`` bypassing the page cache; False where the system refuses."""
    try:
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_DIRECT, 0o644)
    except OSError:  # tmpfs and others refuse O_DIRECT
        return False
    try:
        done = 0
        while done < len(view):
            done += os.write(fd, view[done:])
    except OSError:
        return False
    finally:
        os.close(fd)
    return True


def write_state_rows(path: Path, name: str, col: np.ndarray, lo: int, hi: int, chunk: int):
    """Write rows ``[lo, hi)`` of state array ``name`` from ``col`` ``[hi - lo, units]``.

    ``lo`` is a chunk boundary and ``hi`` a chunk boundary or the end of the array; ``col``
    is already in the array's dtype.
    """
    for start in range(lo, hi, chunk):
        rows = col[start - lo : min(start + chunk, hi) - lo]
        write_state_chunk(path, name, start // chunk, rows, chunk)


def write_state_chunk(path: Path, name: str, k: int, rows: np.ndarray, chunk: int) -> None:
    """Write chunk ``k`` of state array ``name`` from its ``rows`` ``[n <= chunk, units]``."""
    write_state_block(path, name, k, state_block(rows, chunk))


def state_block(rows: np.ndarray, chunk: int) -> np.ndarray:
    """A chunk file's ``[units, chunk]`` block from its ``rows`` ``[n <= chunk, units]``.

    The rows are copied into a page-aligned unit-major block (the compiled transposing copy),
    padded with the fill value 0 past ``n``, as zarr stores an edge chunk.
    """
    import torch

    from workbench.store._runner import aligned_empty

    n = rows.shape[0]
    block = aligned_empty((rows.shape[1], chunk), rows.dtype.newbyteorder("<"))
    _copy_rows([(block[:, :n], torch.from_numpy(np.ascontiguousarray(rows)))])
    block[:, n:] = 0
    return block


def write_column_rows(path: Path, key: str, col: np.ndarray, lo: int, hi: int, chunk: int, fill):
    """Write rows ``[lo, hi)`` of the raw 1-D column ``key`` (see ``_layout.raw_column``).

    ``lo`` is a chunk boundary and ``hi`` a chunk boundary or the end of the column; the
    last chunk is stored full-size, padded with ``fill``, as zarr stores an edge chunk.
    """
    from workbench.store._runner import aligned_empty

    base = Path(path) / key / "c"
    base.mkdir(parents=True, exist_ok=True)
    dtype = np.dtype(col.dtype).newbyteorder("<")
    for start in range(lo, hi, chunk):
        rows = col[start - lo : min(start + chunk, hi) - lo]
        block = aligned_empty((chunk,), dtype)  # O_DIRECT where the size allows
        block[: len(rows)] = rows
        block[len(rows) :] = fill
        write_file(base / str(start // chunk), block)


def write_state_block(path: Path, name: str, k: int, block: np.ndarray) -> None:
    """Write chunk ``k`` of state array ``name``: ``block`` is its ``[units, chunk]`` bytes."""
    d = Path(path) / "states" / name / "c" / str(k)
    d.mkdir(parents=True, exist_ok=True)
    write_file(d / "0", np.ascontiguousarray(block, block.dtype.newbyteorder("<")))


class ChunkSink:
    """A segment's states, copied straight into the unit-major blocks its chunk files hold.

    The rows the runner puts are copied into ``[units, chunk]`` blocks at each :meth:`tick`
    (one transposing copy that also casts to the store dtype, on the compute threads: with
    the recorder's compiled kernels using every core, a second thread competing for them cost
    more than the copies); a chunk lying wholly inside the segment is written as soon as all its
    rows are final, and its blocks return to the buffer pool, so a segment holds only the
    chunks still being filled. Rows of the chunks shared with the neighbouring segments
    come from the function :meth:`finish` returns, called in the writer's order.

    Parameters
    ----------
    path : Path
        The store.
    lengths : list of int
        Tokens of each document of the segment, in store order.
    a : int
        Store row of the segment's first token.
    units : dict
        ``{name: units}`` of every state array (names never recorded are written as zeros).
    dtype : str
        The store dtype.
    chunk, n_tokens : int
        Rows per chunk and of the whole store.
    writer : BackgroundWriter
    """

    def __init__(
        self, path, lengths, a: int, units: dict, dtype, chunk: int, n_tokens: int, writer
    ):
        from workbench.store._runner import take_buffer

        self._take = take_buffer
        self.path, self.writer = Path(path), writer
        self.starts = np.concatenate([[0], np.cumsum(lengths, dtype=np.int64)])
        self.a, self.b = int(a), int(a) + int(self.starts[-1])
        self.units, self.dtype = dict(units), np.dtype(dtype)
        self.c, self.n = int(chunk), int(n_tokens)
        self.blocks: dict[int, dict[str, np.ndarray]] = {}
        self.missing: dict[int, int] = {}  # chunk -> its segment rows not put yet
        first = -(-self.a // self.c)  # chunks lying wholly inside [a, b)
        stop = self.b // self.c if self.b < self.n else -(-self.n // self.c)
        self.inner = range(first, max(first, stop))
        self._ready: list[int] = []
        self._copies: list = []  # this window's (block, offset, value rows), not queued yet
        # float16 rows into float16 blocks: one compiled call a window for all the pieces
        # (wb_put_many_h16 is compiled with the other float16 copies)
        from workbench._native import ckernel as _ckernel

        self._many = self.dtype == np.float16 and _ckernel.has_half()
        self._runs: list[tuple] = []  # (src, rows, units, src stride, dst, dst stride)
        self._keep: list = []  # the tensors those pieces read, alive until they are copied
        self._ptr: dict[int, dict[str, int]] = {}  # chunk -> name -> its block's address
        self._submitted: set[int] = set()
        self._counted: str | None = None  # rows are counted on the first name put

    def _span(self, k: int) -> tuple[int, int]:
        """Store rows of chunk ``k`` inside the segment."""
        return max(k * self.c, self.a), min((k + 1) * self.c, self.b, self.n)

    def put(self, name: str, doc: int, pos: int, value) -> None:
        """Queue ``value`` ``[time, units]`` as document ``doc``'s rows from ``pos``.

        ``value`` (a torch tensor) is read at the next :meth:`tick`: the caller must not
        write to it before (the recorder hands out new tensors on every call).
        """
        import torch

        value = value.detach()
        g, rows, c = self.a + int(self.starts[doc]) + int(pos), int(value.shape[0]), self.c
        if self._counted is None:
            self._counted = name
        count = name == self._counted
        units = int(value.shape[-1])
        many = (
            self._many
            and value.dtype == torch.float16
            and value.device.type == "cpu"
            and value.dim() == 2
            and (units < 2 or value.stride(1) == 1)
        )
        if many and rows:
            self._keep.append(value)
            src, ss = value.data_ptr(), value.stride(0)
        i = 0
        while i < rows:
            k = (g + i) // c
            j = min(rows, (k + 1) * c - g)
            blocks = self.blocks.setdefault(k, {})
            blk = blocks.get(name)
            if blk is None:
                blk = blocks[name] = self._take((units, c), self.dtype)
                self._ptr.setdefault(k, {})[name] = blk.ctypes.data
            off = g + i - k * c
            if many:
                dst = self._ptr[k][name] + 2 * off
                self._runs.append((src + 2 * i * ss, j - i, units, ss, dst, c))
            else:
                self._copies.append((blk[:, off : off + j - i], value[i:j]))
            if count:
                lo, hi = self._span(k)
                left = self.missing.get(k, hi - lo) - (j - i)
                self.missing[k] = left
                if left == 0 and k in self.inner:
                    self._ready.append(k)
            i = j

    def _queue_copies(self) -> None:
        # here, on the compute threads: the writer thread only writes files
        if self._runs:
            import torch

            from workbench._native.ckernel import put_many_h16

            put_many_h16(np.array(self._runs, np.int64), torch.get_num_threads())
            self._runs, self._keep = [], []
        if self._copies:
            copies, self._copies = self._copies, []
            _copy_rows(copies)

    def tick(self) -> None:
        """Queue the copies put so far, then the inner chunks whose rows are all final."""
        self._queue_copies()
        ready, self._ready = self._ready, []
        for k in ready:
            self._submit(k)

    def _submit(self, k: int) -> None:
        blocks = self.blocks.pop(k, {})
        self._ptr.pop(k, None)
        self.missing.pop(k, None)
        self._submitted.add(k)
        self.writer.submit(functools.partial(self._write, k, blocks))

    def _write(self, k: int, blocks: dict) -> None:
        from workbench.store._runner import release_buffers

        filled = min((k + 1) * self.c, self.n) - k * self.c
        jobs = []
        for name, u in self.units.items():
            blk = blocks.get(name)
            if blk is None:
                blk = np.zeros((u, self.c), self.dtype)
            elif filled < self.c:
                blk[:, filled:] = 0  # the fill value, as zarr stores an edge chunk
            jobs.append(functools.partial(write_state_block, self.path, name, k, blk))
        run_all(jobs)
        release_buffers(blocks.values())

    def finish(self):
        """Queue what is left; return a function giving the shared chunks' rows.

        The function, to be called in the writer thread after the jobs queued so far (it
        reads their copies), returns ``{"states/{name}|{row}": [rows, units]}``, the
        ``_pending`` pieces.
        """
        self._queue_copies()
        self._ready = []
        for k in [k for k in self.blocks if k in self.inner]:
            self._submit(k)
        for k in self.inner:  # chunks no row was put into (nothing recorded): zeros
            if k not in self._submitted:
                self._submit(k)
        shared, self.blocks, self._ptr = self.blocks, {}, {}
        return functools.partial(self._pieces, shared)

    def _pieces(self, shared: dict) -> dict[str, np.ndarray]:
        from workbench.store._runner import release_buffers

        pieces = {}
        for k, blocks in sorted(shared.items()):
            lo, hi = self._span(k)
            for name, u in self.units.items():
                blk = blocks.get(name)
                rows = (
                    np.zeros((hi - lo, u), self.dtype)
                    if blk is None
                    else np.ascontiguousarray(blk[:, lo - k * self.c : hi - k * self.c].T)
                )
                pieces[f"states/{name}|{lo}"] = rows
            release_buffers(blocks.values())
        return pieces


_IO_THREADS = 4
_IO: dict = {"pool": None}
_IO_LOCK = threading.Lock()


def _forget_io_threads() -> None:  # in a forked child: the parent's threads are not there
    global _IO_LOCK
    _IO_LOCK = threading.Lock()
    _IO["pool"] = None


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_forget_io_threads)


def run_all(jobs) -> None:
    """Run the file-writing callables ``jobs`` on a few I/O threads; return when all are done.

    Several direct writes in flight keep the disk busier than one: 192 chunk files of 4 MB
    took 0.81 s from one thread here and 0.48 s from four. The first error is raised.
    """
    jobs = list(jobs)
    if len(jobs) < 2:
        for job in jobs:
            job()
        return
    from concurrent.futures import ThreadPoolExecutor

    with _IO_LOCK:
        if _IO["pool"] is None:
            _IO["pool"] = ThreadPoolExecutor(_IO_THREADS, thread_name_prefix="workbench-io")
        pool = _IO["pool"]
    futures = [pool.submit(job) for job in jobs]
    error = None
    for f in futures:  # wait for every one, even after an error: none is left half-done
        try:
            f.result()
        except BaseException as err:  # noqa: BLE001 - the first is raised below
            error = error or err
    if error is not None:
        raise error


def _copy_rows(copies) -> None:
    """``dst[:] = rows.T`` (cast to ``dst``'s dtype) for each ``(dst, rows)``."""
    import torch

    from workbench._native.ckernel import put_rows

    for dst, rows in copies:
        if not put_rows(dst, rows):
            torch.from_numpy(dst).copy_(rows.t())


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
