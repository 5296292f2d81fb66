"""One build at a time per store folder: an advisory lock file holding the builder's pid.

The lock is ``fcntl.flock`` on ``{store}/.workbench-lock``; the kernel releases it when the
process ends however it ends, so a killed build never leaves a stale lock (the file may stay;
the next build takes it over). Where ``fcntl`` is missing (Windows) builds are not locked.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

from workbench.store._layout import StoreError

LOCK_NAME = ".workbench-lock"


class StoreBusyError(StoreError):
    """Another process is building into the same store folder."""


@contextlib.contextmanager
def build_lock(path: Path):
    """Hold the build lock of store folder ``path`` (created if missing) for the block.

    Raises
    ------
    StoreBusyError
        When another process holds it (the message names its pid).
    """
    try:
        import fcntl
    except ImportError:  # no advisory locks here
        yield
        return
    path = Path(path)
    path.mkdir(parents=True, exist_ok=True)
    lock = path / LOCK_NAME
    while True:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            pid = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            os.close(fd)
            raise StoreBusyError(
                f"another build is writing here ({path}, pid {pid}); wait for it to finish, "
                "or pass another path"
            ) from None
        try:  # the holder before us may have removed the file as we opened it: take it anew
            same = os.stat(lock).st_ino == os.fstat(fd).st_ino
        except FileNotFoundError:
            same = False
        if same:
            break
        os.close(fd)
    try:
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        with contextlib.suppress(OSError):
            os.unlink(lock)
        os.close(fd)


def clear_folder(path: Path) -> None:
    """Remove everything in ``path`` but the lock file (a store about to be created anew)."""
    import shutil

    for child in Path(path).iterdir():
        if child.name == LOCK_NAME:
            continue
        if child.is_dir() and not child.is_symlink():
            shutil.rmtree(child)
        else:
            child.unlink()
