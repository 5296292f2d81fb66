"""LRP for LSTM/GRU/RNN: agreement with a numpy reference, conservation, invariants, errors."""

from __future__ import annotations

import pytest
import torch
from explain_models import CellLoop, Classifier, LayerNormModel, Unpacked, batch
from lrp_reference import reference_lrp

from workbench.explainers import LRPError, explain

KINDS = ("lstm", "gru", "rnn_tanh", "rnn_relu")
CASES = [(kind, bi, layers) for kind in KINDS for bi in (False, True) for layers in (1, 2)]


def _random_biases(model):
    with torch.no_grad():
        for name, p in model.named_parameters():
            if "bias" in name:
                p.normal_(0, 0.5)


@pytest.mark.parametrize(("kind", "bi", "layers"), CASES)
@pytest.mark.parametrize("bias_factor", [0.0, 1.0])
def test_agrees_with_numpy_reference(kind, bi, layers, bias_factor):
    torch.manual_seed(layers + 2 * bi)
    model = Classifier(kind, bidirectional=bi, layers=layers).eval()
    _random_biases(model)
    ids, lengths = batch()
    e = explain(model, ids, 2, "lrp", lengths=lengths, bias_factor=bias_factor)
    x = model.emb(ids).detach().double()
    W = model.fc.weight.detach().double().numpy()
    b = model.fc.bias.detach().double().numpy()
    for row, n in enumerate(lengths.tolist()):
        r_ref, init_ref, score = reference_lrp(
            model.rnn, W, b, x[row, :n].numpy(), 2, eps=1e-3, bias_factor=bias_factor
        )
        assert e.output[row].item() == pytest.approx(score, abs=1e-10)
        got = e.feature_attributions[row, :n].numpy()
        assert abs(got - r_ref).max() < 1e-8
        init = e.extras["initial_state_relevance"][row].item()
        assert init == pytest.approx(init_ref, abs=1e-8)
        assert e.attributions[row, n:].abs().max().item() == 0.0 if n < ids.shape[1] else True


@pytest.mark.parametrize(("kind", "bi", "layers"), CASES)
def test_conservation_with_bias_factor_one(kind, bi, layers):
    model = Classifier(kind, bidirectional=bi, layers=layers).eval()
    _random_biases(model)
    ids, lengths = batch(lengths=(9, 4, 6, 2, 9))
    e = explain(model, ids, 0, "lrp", lengths=lengths, bias_factor=1.0)
    total = e.attributions.sum(1) + e.extras["initial_state_relevance"]
    assert (total - e.output).abs().max().item() < 1e-10
    assert e.delta.abs().max().item() < 1e-10


@pytest.mark.parametrize(
    "model",
    [
        Unpacked("gru"),
        Unpacked("lstm"),
        Unpacked("rnn_tanh"),
        CellLoop("lstm"),
        CellLoop("gru"),
        CellLoop("rnn_tanh"),
        CellLoop("rnn_relu"),
        Classifier("lstm", pool="attention"),
        Classifier("gru", bidirectional=False, layers=3, pool="attention", bias=False),
    ],
    ids=[
        "unpacked-gru",
        "unpacked-lstm",
        "unpacked-rnn",
        "lstmcell",
        "grucell",
        "rnncell-tanh",
        "rnncell-relu",
        "attention",
        "gru-nobias",
    ],  # fmt: skip
)
def test_conservation_glue(model):
    model.eval()
    _random_biases(model)
    ids = torch.randint(1, 20, (3, 6))
    kwargs = {"lengths": torch.full((3,), 6)} if isinstance(model, Classifier) else {}
    e = explain(model, ids, 1, "lrp", bias_factor=1.0, **kwargs)
    assert e.delta.abs().max().item() < 1e-10
    assert e.output.abs().min().item() > 0


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_zero_candidate_input_weights_give_zero_input_relevance(kind):
    model = Classifier(kind, bidirectional=True, layers=2).eval()
    _random_biases(model)
    H = model.rnn.hidden_size
    block = slice(2 * H, 3 * H)
    with torch.no_grad():
        model.rnn.weight_ih_l0[block] = 0
        model.rnn.weight_ih_l0_reverse[block] = 0
    ids, lengths = batch()
    e = explain(model, ids, 1, "lrp", lengths=lengths, bias_factor=0.0)
    assert e.feature_attributions.abs().max().item() == 0.0
    assert e.output.abs().min().item() > 0
    e1 = explain(model, ids, 1, "lrp", lengths=lengths, bias_factor=1.0)
    assert e1.feature_attributions.abs().max().item() > 0


def test_float32_model_and_batch_independence():
    model = Classifier("lstm").eval()
    ids, lengths = batch()
    full = explain(model, ids, 1, "lrp", lengths=lengths)
    one = explain(model, ids[1:2, :3], 1, "lrp", lengths=lengths[1:2])
    assert torch.allclose(full.attributions[1, :3], one.attributions[0], atol=1e-12)
    assert full.attributions.dtype == torch.float64
    assert next(model.parameters()).dtype == torch.float32  # the model is left as it was


def test_no_rule_is_a_clear_error():
    with pytest.raises(LRPError, match="layer_norm"):
        explain(LayerNormModel().eval(), torch.randint(0, 10, (2, 5)), 0, "lrp")


def test_float_inputs_lrp():
    from explain_models import Forecaster

    model = Forecaster().eval()
    _random_biases(model)
    x = torch.randn(2, 8, 2)
    e = explain(model, x, 1, "lrp", bias_factor=1.0)
    assert e.feature_attributions.shape == (2, 8, 2)
    assert e.delta.abs().max().item() < 1e-10


# ----------------------------------------------------------------------- unit targets
UNIT_CASES = [
    ("lstm", True, 2, "rnn.1.bwd.cell", (1, 4), 2),
    ("lstm", True, 2, "rnn.0.fwd.hidden", (0,), -1),
    ("lstm", False, 2, "rnn.1.fwd.hidden", (2, 3, 5), 1),
    ("gru", True, 2, "rnn.1.fwd.hidden", (0, 5), -1),
    ("gru", True, 1, "rnn.0.bwd.hidden", (3,), 0),
]


@pytest.mark.parametrize(("kind", "bi", "layers", "name", "units", "step"), UNIT_CASES)
@pytest.mark.parametrize("bias_factor", [0.0, 1.0])
def test_unit_target_agrees_with_numpy_reference(kind, bi, layers, name, units, step,
                                                 bias_factor):  # fmt: skip
    from lrp_reference import reference_unit_lrp

    from workbench import Target, record

    torch.manual_seed(7 + layers)
    model = Classifier(kind, bidirectional=bi, layers=layers).eval()
    _random_biases(model)
    ids, lengths = batch(lengths=(7, 3, 5, 4))
    target = Target(name, units, step)
    e = explain(model, ids, target, "lrp", lengths=lengths, bias_factor=bias_factor)
    recorded = record(model, ids, lengths, names=[name])[name]
    x = model.emb(ids).detach().double()
    _, lay, d, q = name.split(".")
    for row, n in enumerate(lengths.tolist()):
        t = n - 1 if step == -1 else step
        r_ref, init_ref, score = reference_unit_lrp(
            model.rnn, x[row, :n].numpy(), int(lay), int(d == "bwd"), q, list(units), t,
            eps=1e-3, bias_factor=bias_factor,
        )  # fmt: skip
        assert e.output[row].item() == pytest.approx(score, abs=1e-10)
        # the explained score is the recorded value (float32 recorder: float32 tolerance)
        assert score == pytest.approx(float(recorded[row, t, list(units)].sum()), abs=1e-5)
        assert abs(e.feature_attributions[row, :n].numpy() - r_ref).max() < 1e-8
        init = e.extras["initial_state_relevance"][row].item()
        assert init == pytest.approx(init_ref, abs=1e-8)
        if bias_factor == 1.0:  # relevance conserved: output = inputs + initial states
            assert abs(e.delta[row].item()) < 1e-10
        if d == "fwd":  # a forward state cannot depend on later tokens
            assert e.attributions[row, t + 1 :].abs().max().item() == 0.0 if t + 1 < n else True


@pytest.mark.parametrize(
    ("name", "fragment"),
    [("rnn.0.fwd.forget_gate", "gives gates no relevance"), ("rnn.1.bwd.update_gate", "gates")],
)
def test_unit_target_gates_are_a_clear_error(name, fragment):
    from workbench import Target
    from workbench.explainers.lrp import can_explain

    model = Classifier("gru" if "update" in name else "lstm").eval()
    ids, lengths = batch()
    with pytest.raises(LRPError, match=fragment):
        explain(model, ids, Target(name, 0), "lrp", lengths=lengths)
    assert fragment in can_explain(model, name)
    assert can_explain(model, "rnn.0.fwd.hidden") is None


@pytest.mark.parametrize("kind", ["rnn_tanh", "rnn_relu"])
def test_unit_target_of_an_elman_rnn_conserves(kind):
    from workbench import Target, record

    model = Classifier(kind, bidirectional=True, layers=2).eval()
    _random_biases(model)
    ids, lengths = batch(lengths=(7, 3, 5, 4))
    target = Target("rnn.1.bwd.hidden", (0, 2), 1)
    e = explain(model, ids, target, "lrp", lengths=lengths, bias_factor=1.0)
    value = record(model, ids, lengths, names=[target.name])[target.name][:, 1, [0, 2]].sum(-1)
    torch.testing.assert_close(e.output.float(), value, atol=1e-5, rtol=0)  # float32 recorder
    assert e.delta.abs().max().item() < 1e-10  # output = inputs + initial states
