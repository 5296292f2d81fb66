"""``workbench bench compare``: linear CKA between two 1M-step x 256-unit stores.

Two synthetic float16 stores (telegraph on/off units plus noise, :func:`synthetic_store`) of
the same steps are compared by :func:`workbench.compare.joint_moments` (each block read
feature-major from the chunk files, shifted while cast to float32, its products in float32
summed in float64; only ``X^T X``, ``Y^T Y``, ``X^T Y``). Baseline: reading both stores block by
block into float64 through the row-major view, the I/O and conversion of the former path.
Target: under 30 s.
"""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import numpy as np
import typer

from workbench.bench.store import Row, synthetic_store

TARGET_S = 30.0


def _read_all(x, y, block: int) -> None:
    n = int(x.shape[0])
    for a in range(0, n, block):
        b = min(a + block, n)
        np.asarray(x[a:b], dtype=np.float64).sum()
        np.asarray(y[a:b], dtype=np.float64).sum()


def run(tokens: int = 1_000_000, units: int = 256, quick: bool = False) -> list[Row]:
    """Time CKA (and SVCCA) of two ``tokens x units`` stores; quick: 50k steps."""
    from workbench.compare import joint_moments
    from workbench.compare._cka import cka_from_moments
    from workbench.compare._moments import BLOCK
    from workbench.compare._svcca import svcca_from_moments
    from workbench.store import StateStore

    if quick:
        tokens = 50_000
    with tempfile.TemporaryDirectory(prefix="wb_bench_compare_") as tmp:
        tmp = Path(tmp)
        synthetic_store(tmp / "a", tokens, units, seed=1)
        synthetic_store(tmp / "b", tokens, units, seed=2)
        sa, sb = StateStore.open(tmp / "a"), StateStore.open(tmp / "b")
        x, y = sa.states(sa.names[0]), sb.states(sb.names[0])
        t0 = time.perf_counter()
        _read_all(x, y, BLOCK)
        read_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        m = joint_moments({"a": x, "b": y})
        value = cka_from_moments(m, "a", "b")
        cka_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        sim = svcca_from_moments(m, "a", "b").similarity
        svcca_s = time.perf_counter() - t0
    case = f"CKA {tokens:,} x {units} vs {tokens:,} x {units}"
    return [
        Row(case, "read both, float64", read_s, cka_s, f"< {TARGET_S:.0f} s",
            f"CKA {value:.3f}"),
        Row(f"SVCCA from the same sums ({units} + {units})", "the CKA above", cka_s,
            svcca_s, "", f"SVCCA {sim:.3f}"),
    ]  # fmt: skip


def bench_compare(
    tokens: int = typer.Option(1_000_000, help="Steps of each synthetic store."),
    units: int = typer.Option(256, help="Units of each store."),
    quick: bool = typer.Option(False, help="50k steps, for a smoke test."),
) -> None:
    """Linear CKA of two 1M-step x 256-unit stores (target 30 s), SVCCA from its sums."""
    from rich.console import Console
    from rich.table import Table

    rows = run(tokens, units, quick)
    table = Table(title="workbench bench compare")
    for col in ("case", "baseline", "baseline time", "time", "target", "note"):
        table.add_column(col)
    for r in rows:
        table.add_row(r.case, r.baseline, f"{r.baseline_s:.2f} s", f"{r.measured_s:.2f} s",
                      r.target, r.note)  # fmt: skip
    Console().print(table)
