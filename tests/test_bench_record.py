"""``workbench bench record``'s parts: busy competitors always stopped, pairs and quartiles."""

import pytest

from workbench.bench.recorder import busy_processes, contention_case, cpu_model, quartiles


def test_busy_processes_stop_when_the_block_ends_even_on_an_error():
    with pytest.raises(RuntimeError, match="inside"):
        with busy_processes(2) as procs:
            assert len(procs) == 2 and all(p.poll() is None for p in procs)  # running
            raise RuntimeError("inside")
    assert all(p.poll() is not None for p in procs)


def test_a_contention_case_pairs_quiet_and_contended_runs():
    seen = []
    row = contention_case("tiny", lambda: seen.append(1), busy=1, pairs=2)
    assert len(seen) == 1 + 2 * 2  # a warm-up, then a quiet and a contended run per pair
    assert row.busy == 1 and row.quiet_s > 0 and row.contended_s > 0
    assert row.ratio_iqr[0] <= row.ratio <= row.ratio_iqr[1]


def test_quartiles_and_the_cpu_line():
    assert quartiles([1.0, 2.0, 3.0, 4.0, 5.0]) == (2.0, 4.0)
    assert quartiles([1.5]) == (1.5, 1.5)
    assert "core(s)" in cpu_model()
