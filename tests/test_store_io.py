"""The store build's per-value work: the compiled transposing cast and the direct file writes."""

import os
import time

import numpy as np
import pytest
import torch

from workbench._native import ckernel as _ckernel
from workbench.config import settings
from workbench.store import _writer
from workbench.store._runner import aligned_empty

needs_kernel = pytest.mark.skipif(_ckernel.load() is None, reason="no C compiler here")


@needs_kernel
@pytest.mark.parametrize(
    "dtype,src_dtype",
    [(np.float16, torch.float32), (np.float32, torch.float32), (np.float16, torch.float16)],
)
def test_put_rows_is_a_transposing_cast(dtype, src_dtype):
    if src_dtype == torch.float16 and not _ckernel.has_half():
        pytest.skip("no _Float16 here")
    torch.manual_seed(0)
    window = torch.randn(70, 3, 45) * 100  # [time, batch, units], one row of the batch taken
    window[5, 1, 7], window[6, 1, 8], window[7, 1, 9] = float("nan"), float("inf"), 1e6
    window[8, 1, 10] = 3e-8  # a float16 subnormal
    window = window.to(src_dtype)
    src = window[:, 1]
    block = np.full((45, 100), 7, dtype)
    dst = block[:, 13:83]
    assert _ckernel.put_rows(dst, src)
    with np.errstate(over="ignore"):
        want = src.t().float().numpy().astype(dtype)
    assert np.array_equal(dst, want, equal_nan=True)
    finite = np.isfinite(want)
    got_bits = np.ascontiguousarray(dst).view(np.uint16 if dtype == np.float16 else np.uint32)
    assert np.array_equal(got_bits[finite], want.view(got_bits.dtype)[finite])  # same rounding
    assert (block[:, :13] == 7).all() and (block[:, 83:] == 7).all()  # nothing else touched


@needs_kernel
@pytest.mark.parametrize(
    "rows,units,off", [(256, 256, 100), (300, 96, 7), (31, 64, 0), (64, 45, 3), (33, 650, 9)]
)
def test_put_rows_half_tiles_and_edges(rows, units, off):
    """float16 into float16 goes a 32 x 32 tile at a time (in registers where the CPU has
    AVX-512): whole tiles, partial unit blocks and leftover rows are all the same bits."""
    if not _ckernel.has_half():
        pytest.skip("no _Float16 here")
    torch.manual_seed(1)
    src = torch.randn(rows, units + 5).half()[:, :units]  # rows strided like a window's
    block = np.full((units, rows + 140), 7, np.float16)
    dst = block[:, off : off + rows]
    assert _ckernel.put_rows(dst, src)
    assert np.array_equal(dst.view(np.uint16), src.t().contiguous().numpy().view(np.uint16))
    assert (block[:, :off] == 7).all() and (block[:, off + rows :] == 7).all()


@needs_kernel
def test_put_many_is_put_rows_for_each_piece():
    if not _ckernel.has_half():
        pytest.skip("no _Float16 here")
    torch.manual_seed(2)
    block = np.full((96, 700), 7, np.float16)
    srcs = [torch.randn(300, 100).half()[:, :96] for _ in range(3)]
    spans = [(5, 256), (300, 33), (400, 299)]  # whole tiles, leftover rows, both
    pieces = [
        (s.data_ptr(), n, 96, s.stride(0), block[:, off:].ctypes.data, block.strides[0] // 2)
        for s, (off, n) in zip(srcs, spans, strict=True)
    ]
    assert _ckernel.put_many_h16(np.array(pieces), 2)
    want = np.full_like(block, 7)
    for s, (off, n) in zip(srcs, spans, strict=True):
        want[:, off : off + n] = s[:n].t().numpy()
    assert np.array_equal(block.view(np.uint16), want.view(np.uint16))
    with pytest.raises(ValueError, match=r"\[n, 6\]"):
        _ckernel.put_many_h16(np.zeros((2, 5)), 1)


@needs_kernel
def test_put_rows_declines_what_it_cannot_do():
    src = torch.randn(10, 4)
    assert not _ckernel.put_rows(np.zeros((4, 10), np.float64), src)  # dtype
    assert not _ckernel.put_rows(np.zeros((4, 9), np.float16), src)  # shape
    assert not _ckernel.put_rows(np.zeros((4, 20), np.float16)[:, ::2], src)  # strided rows
    assert not _ckernel.put_rows(np.zeros((4, 10), np.float16), src.double())
    assert not _ckernel.put_rows(np.zeros((10, 4), np.float16).T, src.t().contiguous().t()[:, :])


def test_aligned_blocks_and_direct_writes_round_trip(tmp_path):
    block = aligned_empty((64, 2048), np.float16)
    assert block.ctypes.data % 4096 == 0 and block.flags.c_contiguous
    block[:] = np.arange(block.size, dtype=np.float32).reshape(block.shape) % 1000
    odd = np.arange(1001, dtype=np.float32)  # unaligned size: the buffered path
    for name, arr in (("a", block), ("b", odd), ("c", block[1:])):
        target = tmp_path / name
        _writer.write_file(target, np.ascontiguousarray(arr))
        assert target.read_bytes() == np.ascontiguousarray(arr).tobytes()
    assert not list(tmp_path.glob("*.partial"))


def test_a_file_system_refusing_direct_io_gets_buffered_writes(tmp_path, monkeypatch):
    real_open = os.open

    def refusing(path, flags, *args):  # what tmpfs on older kernels answers
        if flags & getattr(os, "O_DIRECT", 0):
            raise OSError(22, "Invalid argument")
        return real_open(path, flags, *args)

    monkeypatch.setattr(_writer, "_NO_DIRECT", set())
    monkeypatch.setattr(_writer.os, "open", refusing)
    block = aligned_empty((16, 4096), np.float16)
    block[:] = 3
    _writer.write_file(tmp_path / "0", block)
    assert (tmp_path / "0").read_bytes() == block.tobytes()
    assert not list(tmp_path.glob("*.partial"))
    if _writer._HAS_DIRECT and settings().direct_io:  # remembered for that file system only
        assert _writer._NO_DIRECT == {os.stat(tmp_path).st_dev}


def test_run_all_finishes_every_job_then_raises_the_first_error():
    done = []

    def ok(i):
        time.sleep(0.01)
        done.append(i)

    def bad():
        raise OSError("disk full")

    jobs = [lambda i=i: ok(i) for i in range(6)]
    _writer.run_all(jobs)
    assert sorted(done) == list(range(6))
    done.clear()
    with pytest.raises(OSError, match="disk full"):
        _writer.run_all([bad, *jobs])
    assert sorted(done) == list(range(6))  # none left half-done behind the error


def test_copies_off_the_main_thread_open_no_thread_team():
    """An OpenMP region opened from another thread leaves a team behind that makes libgomp
    sleep at every barrier of the process: copies on I/O threads run on one thread."""
    import threading

    seen = []
    t = threading.Thread(target=lambda: seen.append(_ckernel._threads(2)))
    t.start()
    t.join()
    assert seen == [1]
    assert 1 <= _ckernel._threads(2) <= 2  # the main thread: as many as are free now


@pytest.mark.skipif(not hasattr(os, "fork"), reason="no fork here")
def test_run_all_in_a_forked_child_gets_threads_of_its_own():
    """The store tests fork builders from a warm process: the parent's I/O threads are not
    in the child, whose writes must still run (they waited forever before)."""
    _writer.run_all([lambda: None, lambda: None])  # the parent's pool exists
    pid = os.fork()
    if pid == 0:
        try:
            done = []
            _writer.run_all([lambda: done.append(1), lambda: done.append(2)])
            os._exit(0 if sorted(done) == [1, 2] else 1)
        finally:
            os._exit(2)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        got, status = os.waitpid(pid, os.WNOHANG)
        if got:
            assert os.waitstatus_to_exitcode(status) == 0
            return
        time.sleep(0.05)
    os.kill(pid, 9)
    os.waitpid(pid, 0)
    pytest.fail("run_all in a forked child hung")


def test_build_bench_keeps_its_stores_until_the_end_unless_the_disk_is_short(tmp_path, monkeypatch):
    """Each pair builds into a new folder (no deletes between timings), all removed at the end;
    where the disk cannot hold another store the oldest goes first, and the note says so."""
    import collections

    from workbench.bench import store as _bench

    (row,) = _bench.bench_build(tmp_path, tokens=2_000, pairs=2)
    assert row.paired_ratio > 0 and "deleted" not in row.note
    assert not any(tmp_path.iterdir())  # nothing left behind
    usage = collections.namedtuple("usage", "total used free")
    monkeypatch.setattr(_bench.shutil, "disk_usage", lambda p: usage(1, 1, 0))
    (row,) = _bench.bench_build(tmp_path, tokens=2_000, pairs=3)
    assert "2 earlier store(s) deleted mid-run for disk space" in row.note
    assert not any(tmp_path.iterdir())
