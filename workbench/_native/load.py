"""How many CPU cores this process may use, and how many are free right now.

A parallel loop whose OpenMP team has more threads than free cores waits at every barrier
for a thread the scheduler has put aside: libgomp's threads spin there first (up to about
300,000 rounds) and the spinning takes the time the late thread needed. On a 2-core machine
with two other busy processes, a recording with two threads ran 7.8x slower than quiet while
getting about half the CPU. :func:`free_cores` reads the kernel's count of runnable tasks
(``/proc/loadavg``), so that a call can size its team to what is free when it starts.
"""

from __future__ import annotations

import os
import time


def cores() -> int:
    """Cores this process may run on (its CPU affinity), at least 1."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except (AttributeError, OSError):
        return max(1, os.cpu_count() or 1)


def _running() -> int | None:
    """Runnable tasks on the machine now (the 4th field of ``/proc/loadavg``), or None."""
    try:
        with open("/proc/loadavg", "rb") as f:
            field = f.read().split()[3]
        return int(field.split(b"/")[0])
    except (OSError, IndexError, ValueError):
        return None


def _own_running() -> int:
    """The threads of this process that are runnable now (OpenMP workers may still spin), >= 1."""
    count = 0
    try:
        for tid in os.listdir("/proc/self/task"):
            try:
                with open(f"/proc/self/task/{tid}/stat", "rb") as f:
                    text = f.read()
            except OSError:
                continue
            if text[text.rfind(b")") + 2 : text.rfind(b")") + 3] == b"R":
                count += 1
    except OSError:
        return 1
    return max(1, count)


def free_cores(samples: int = 3) -> int:
    """Cores not taken by other processes' runnable tasks, at least 1.

    ``cores() - (running - ours)``, where ``running`` counts the machine's runnable tasks and
    ``ours`` this process's runnable threads (the caller, OpenMP workers still spinning).

    Parameters
    ----------
    samples : int
        Reads, 0.2 ms apart; the median of the others' count is used (a single read can
        catch a short-lived task).

    Where ``/proc/loadavg`` cannot be read (not Linux) every core counts as free.
    """
    now = time.monotonic()
    if now - _MEMO[0] < _MEMO_S:
        return _MEMO[1]
    n = cores()
    others = []
    for i in range(max(1, samples)):
        r = _running()
        if r is None:
            return n
        others.append(max(0, r - _own_running()))
        if i + 1 < samples:
            time.sleep(0.0002)
    others.sort()
    free = max(1, min(n, n - others[len(others) // 2]))
    _MEMO[:] = [time.monotonic(), free]
    return free


_MEMO_S = 0.05  # many small calls in a row read the count once per 50 ms
_MEMO: list = [-1.0, 1]
