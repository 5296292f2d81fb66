"""Short OpenMP barrier spins, set before torch loads its OpenMP runtime (libgomp).

libgomp's threads spin at a barrier (and after a parallel loop) up to ``GOMP_SPINCOUNT``
rounds before they sleep: 300,000 by default, milliseconds of a core. When a thread of the
team has been put aside for another process, the others spin away the time it needs: a
2-layer 256-unit LSTM recording with a team of 2, next to 2 busy processes on a machine at
load 16-19, took a median 18.9 s against 1.15 s with ``GOMP_SPINCOUNT=10000`` (a thirtieth
of the spinning, still far longer than a barrier waits for a thread that runs).

libgomp reads the variable once, when it is loaded, so this only takes effect when
``workbench`` is imported before ``torch`` (as ``workbench`` commands do); set
``GOMP_SPINCOUNT`` yourself otherwise. A value already set (or ``OMP_WAIT_POLICY``) wins,
and ``WORKBENCH_SPIN=0`` leaves libgomp's default. Kept free of imports beyond ``os`` and
``sys``: ``import workbench`` runs it.
"""

from __future__ import annotations

import os
import sys

SPINCOUNT = "10000"


def bound_spinning() -> bool:
    """Set ``GOMP_SPINCOUNT`` where nothing set it and torch is not loaded; whether it did."""
    env = os.environ
    if "torch" in sys.modules or env.get("WORKBENCH_SPIN") == "0":
        return False
    if "GOMP_SPINCOUNT" in env or "OMP_WAIT_POLICY" in env:
        return False
    env["GOMP_SPINCOUNT"] = SPINCOUNT
    return True
