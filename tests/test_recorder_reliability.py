"""The recorder under hostile input: nesting, empty batches, bad ids, NaN weights, edits."""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

import pytest
import torch
from torch import nn

import workbench
from workbench.recorder import Recorder, RecordingError
from workbench.recorder.edits import clamp, scale, set_to, zero


class Tagger(nn.Module):
    def __init__(self, kind: str = "lstm") -> None:
        super().__init__()
        torch.manual_seed(0)
        self.embed = nn.Embedding(10, 4)
        rnn = nn.LSTM if kind == "lstm" else nn.GRU
        self.rnn = rnn(4, 16, 2, batch_first=True)
        self.out = nn.Linear(16, 3)

    def forward(self, ids):
        h, _ = self.rnn(self.embed(ids))
        return self.out(h[:, -1])


def _ids(batch=3, time=7):
    return torch.randint(0, 10, (batch, time), generator=torch.Generator().manual_seed(1))


# ------------------------------------------------------------------------------ nesting
@pytest.mark.parametrize("kind", ["lstm", "gru"])
@pytest.mark.parametrize("inner_names", ["rnn.0.*", "rnn.1.*.hidden", None])
def test_nested_recorders_both_record_the_real_call(kind, inner_names):
    model = Tagger(kind).eval()
    ids = _ids()
    alone_outer = workbench.record(model, ids)
    alone_inner = workbench.record(model, ids, names=inner_names)
    with torch.no_grad(), Recorder(model) as outer:
        with Recorder(model, names=inner_names) as inner:
            out = model(ids)
    torch.testing.assert_close(out, alone_inner.output, rtol=0, atol=0)  # inner answers
    for rec, alone in ((outer, alone_outer), (inner, alone_inner)):
        trace = rec.trace
        assert trace.names == alone.names
        for name in alone.names:
            assert trace[name].shape == alone[name].shape == (3, 7, 16), name
            torch.testing.assert_close(trace[name], alone[name], rtol=0, atol=0)
        assert trace.lengths.tolist() == [7, 7, 7]


def test_nested_recorders_of_cells_and_three_levels():
    cell = nn.LSTMCell(4, 8)
    x = torch.randn(5, 2, 4)
    with torch.no_grad(), Recorder(cell) as a, Recorder(cell) as b, Recorder(cell) as c:
        state = None
        for t in range(5):
            state = cell(x[t], state)
    ref = a.trace
    assert ref["lstmcell.0.fwd.cell"].shape == (2, 5, 8)
    for rec in (b, c):
        for name in ref.names:
            torch.testing.assert_close(rec.trace[name], ref[name], rtol=0, atol=0)


def test_an_explained_target_inside_a_recorder_leaves_its_trace_whole():
    model = Tagger().eval()
    ids = _ids()
    with Recorder(model, names="rnn.1.fwd.cell") as rec:
        workbench.explain(model, ids, workbench.Target("rnn.0.fwd.cell", unit=2), "saliency")
    # the recorder saw every forward of the explainer, each of the full batch
    assert rec.trace["rnn.1.fwd.cell"].shape[0] == 3


def test_nested_recorders_with_edits_are_refused():
    model = Tagger().eval()
    with Recorder(model, names="rnn.0.fwd.cell"), pytest.raises(RecordingError, match="nested"):
        workbench.intervene(model, _ids(), edits={"rnn.0.fwd.cell": zero(1)})
    assert torch.overrides._get_current_function_mode_stack() == []
    assert not model.rnn._forward_pre_hooks


# -------------------------------------------------------------------- empty and bad input
@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_a_batch_of_zero_rows_records_empty_tensors(kind):
    model = Tagger(kind).eval()
    trace = workbench.record(model, torch.zeros(0, 6, dtype=torch.long))
    assert trace.output.shape == (0, 3)
    assert len(trace.names) == (12 if kind == "lstm" else 8)
    for name in trace.names:
        assert trace[name].shape == (0, 6, 16), name
    assert trace.lengths.shape == (0,)


def test_a_batch_of_zero_rows_two_way_projected_and_cells():
    lstm = nn.LSTM(4, 8, bidirectional=True, proj_size=3)
    trace = workbench.record(lstm, torch.zeros(5, 0, 4))
    assert trace.output[0].shape == (5, 0, 6)
    assert trace["lstm.0.bwd.hidden"].shape == (0, 5, 3)
    assert trace["lstm.0.bwd.cell"].shape == (0, 5, 8)
    cell = nn.GRUCell(4, 8)
    with Recorder(cell) as rec:
        cell(torch.zeros(0, 4))
    assert rec.trace["grucell.0.fwd.hidden"].shape == (0, 1, 8)


def test_a_sequence_of_length_zero_is_refused_in_one_line():
    with pytest.raises(RecordingError, match="sequence length 0"):
        workbench.record(Tagger().eval(), torch.zeros(2, 0, dtype=torch.long))


def test_a_model_on_the_meta_device_is_refused():
    with torch.device("meta"):
        model = Tagger().eval()
    with pytest.raises(RecordingError, match="'meta' device"):
        workbench.record(model, torch.zeros(1, 3, dtype=torch.long, device="meta"))
    assert not model.rnn._forward_pre_hooks


def test_out_of_vocabulary_ids_name_the_ids_and_the_vocabulary():
    model = Tagger().eval()
    with pytest.raises(RecordingError, match=r"token ids -1, 12 .*emb.* \(10 ids, valid 0\.\.9\)"):
        workbench.record(model, torch.tensor([[1, 12, 3, -1, 12]]))
    assert not model.embed._forward_pre_hooks
    workbench.record(model, torch.tensor([[0, 9]]))  # the edges are fine


def test_nan_weights_warn_naming_the_parameter():
    model = Tagger().eval()
    with torch.no_grad():
        model.rnn.weight_hh_l1[3, 2] = float("nan")
    with pytest.warns(RuntimeWarning, match="weight_hh_l1 holds NaN/inf"):
        workbench.record(model, _ids())
    clean = Tagger().eval()
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        workbench.record(clean, _ids())


# ------------------------------------------------------------------------------- edits
@pytest.mark.parametrize(
    "make",
    [
        lambda: zero([3.7, 17.2]),
        lambda: zero(2.5),
        lambda: set_to([1, "a"], 0.0),
        lambda: clamp([True], 0, 1),
        lambda: scale([], 2.0),
        lambda: zero(1, start=1.5),
        lambda: zero(1, start=-2),
        lambda: zero(1, start=4, stop=4),
    ],
)
def test_edits_refuse_non_integer_units_and_bad_steps(make):
    with pytest.raises(RecordingError, match="integer|>= 0|> start|empty"):
        make()


def test_integral_floats_and_numpy_units_are_accepted():
    import numpy as np

    v = torch.ones(2, 5)
    assert zero(np.array([1, 3]))(v, 0)[:, [1, 3]].eq(0).all()
    assert zero([2.0])(v, 0)[:, 2].eq(0).all()


def test_an_edit_starting_past_the_end_is_refused():
    model = Tagger().eval()
    with pytest.raises(RecordingError, match="starts at step 7 .* ran 7 steps"):
        workbench.intervene(model, _ids(), edits={"rnn.0.fwd.cell": zero(1, start=7)})
    edited = workbench.intervene(model, _ids(), edits={"rnn.0.fwd.cell": zero(1, start=6)})
    assert edited["rnn.0.fwd.cell"][:, 6, 1].eq(0).all()
    assert edited["rnn.0.fwd.cell"][:, 5, 1].ne(0).all()


def test_a_unit_out_of_range_is_refused_by_the_edit():
    with pytest.raises(RecordingError, match="unit 16 is out of range"):
        workbench.intervene(Tagger().eval(), _ids(), edits={"rnn.0.fwd.cell": zero(16)})


# ------------------------------------------------------------------------------- files
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no FIFOs here")
def test_trace_load_refuses_a_fifo_and_a_folder(tmp_path):
    fifo = tmp_path / "t.safetensors"
    os.mkfifo(fifo)
    # in a child process: a blocked read holds the GIL (safetensors opens the file natively)
    code = (
        "import sys, workbench\n"
        "try:\n    workbench.Trace.load(sys.argv[1])\n"
        "except ValueError as e:\n    print(e)\n"
    )
    try:
        res = subprocess.run(
            [sys.executable, "-c", code, str(fifo)],
            capture_output=True,
            text=True,
            timeout=120,
            env={**os.environ, "PYTHONPATH": str(Path(workbench.__file__).parents[1])},
        )
    except subprocess.TimeoutExpired:  # the child was killed
        pytest.fail("Trace.load blocked on a FIFO")
    assert "not a regular file" in res.stdout, res.stderr
    with pytest.raises(ValueError, match="not a regular file"):
        workbench.Trace.load(tmp_path)
