"""The core of demos/cell_specialists.py on a small slice of the python corpus.

The full run (``python demos/cell_specialists.py``, a few minutes) is not part of the suite.
"""

import importlib.util
from pathlib import Path

import numpy as np
import pytest

SCRIPT = Path(__file__).resolve().parent.parent / "demos" / "cell_specialists.py"


@pytest.fixture(scope="module")
def demo():
    spec = importlib.util.spec_from_file_location("cell_specialists", SCRIPT)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(scope="module")
def small(demo, tmp_path_factory):
    import workbench
    from workbench.models.checkpoint import shipped

    bundle = workbench.load(shipped("python"))
    bundle.model.eval()
    train = demo.slice_docs("train", 1200, 400)
    test = demo.slice_docs("test", 1200, 400)
    path = tmp_path_factory.mktemp("specialists") / "store"
    return bundle, demo.build_store(bundle, train, test, path), len(train)


def test_slices_sample_many_files(small):
    _, store, n_train = small
    lengths = np.diff(store.boundaries)
    assert lengths[:n_train].sum() == 1200 and lengths[n_train:].sum() == 1200
    assert lengths.max() == 400 and n_train >= 3 and store.n_docs - n_train >= 3
    assert store.manifest["meta"]["in_literal"] == "bool"


def test_best_units_are_the_stores_ranking(demo, small):
    _, store, n_train = small
    concepts = (("in_literal", "is_code", None, 0.95), ("depth", None, "is_code", 0.8))
    rows = demo.best_units(store, n_train, concepts=concepts, quantities=("rnn.0.fwd.cell",))
    lit, depth = rows
    ref = store.best_cells(
        "rnn.0.fwd.cell", "in_literal", top=3, contrast="is_code", select_on=range(n_train)
    )
    assert lit["top"] == ref.unit.tolist() and lit["unit"] == ref.unit.iloc[0]
    assert lit["method"] == "auc" and depth["method"] == "corr"
    assert "in_literal (AUC) | vs is_code" in demo.table(
        {
            "rows": rows,
            "causal": _fake_causal(),
            "train_docs": 3,
            "test_docs": 3,
            "train_chars": 1200,
            "test_chars": 1200,
        }  # fmt: skip
    )


def _fake_causal():
    e = {"cells": [1], "inside": 0.1, "outside": 0.0, "ratio": 5.0,
         "random_inside": np.zeros(2), "random_outside": np.zeros(2)}  # fmt: skip
    return {"windows": 1, "chars": 9, "literal_chars": 3, "base_inside": 2.0,
            "base_outside": 1.0, 1: e, 3: e}  # fmt: skip


def test_ablation_bits_unedited_match_the_store_and_edited_match_intervene(demo, small):
    import torch

    import workbench
    from workbench.recorder.edits import zero

    bundle, store, n_train = small
    b = store.boundaries
    texts = ["".join(store.tokens(int(b[d]), int(b[d + 1]))) for d in (n_train, n_train + 1)]
    units = int(store.manifest["units"]["rnn.0.fwd.cell"])
    masks = np.ones((2, units))
    masks[1, [5, 17]] = 0
    bits = demo.ablation_bits(bundle, texts, "rnn.0.fwd", masks)
    assert bits.shape == (2, 2, 399)
    # unedited: the store's per-token losses (recorded by another code path, float32)
    for w, d in enumerate((n_train, n_train + 1)):
        loss = store.token_table(int(b[d]), int(b[d + 1]))["loss"].to_numpy()[:-1]
        np.testing.assert_allclose(bits[0, w] * np.log(2), loss, rtol=1e-4, atol=1e-4)
    # the configurations in the batch dimension: as one intervene run per configuration
    ids, _ = bundle.encode(texts)
    edit = zero([5, 17])
    with torch.no_grad():
        trace = workbench.intervene(
            bundle.model, ids, edits={"rnn.0.fwd.cell": edit, "rnn.0.fwd.hidden": edit}
        )
    logp = torch.log_softmax(trace.output[0][:, :-1].double(), -1)
    ref = -logp.gather(-1, ids[:, 1:, None])[..., 0].numpy() / np.log(2)
    np.testing.assert_allclose(bits[1], ref, rtol=1e-4, atol=1e-5)
    assert (bits[1] != bits[0]).any()


def test_causal_check_compares_with_random_draws(demo, small):
    bundle, store, n_train = small
    row = {"name": "rnn.0.fwd.cell", "top": [3, 9, 11]}
    c = demo.causal_check(bundle, store, row, n_train, n_windows=1, length=120, draws=2)
    assert c["windows"] == 1 and c["chars"] == 119
    for k in (1, 3):
        assert c[k]["cells"] == row["top"][:k] and c[k]["random_inside"].shape == (2,)
        mean = c[k]["random_inside"].mean()
        if mean > 0:
            assert c[k]["ratio"] == pytest.approx(c[k]["inside"] / mean)


def test_the_derived_literal_cell_is_this_models_and_the_rule_on_a_recording(small):
    """The constant the States page and ``workbench demo`` open on still holds for the model.

    On the small slice's training files the derived unit is a strong literal detector and
    lower inside literals; the rule (:func:`literal_cell`) on the same arrays ranks as
    ``best_cells`` does.
    """
    from workbench.store import _specialists as sp
    from workbench.store._runner import model_fingerprint

    bundle, store, n_train = small
    cell = sp.store_literal_cell(store)
    assert cell == sp.shipped_literal_cell(model_fingerprint(bundle.model))
    assert (cell.name, cell.unit) == ("rnn.0.fwd.cell", 164) and cell.auc < 0.5
    hi = int(store.boundaries[n_train])
    tracks = {t: store.meta(t)[:hi] for t in (sp.TRACK, sp.CONTRAST)}
    states = {n: store.states(n).rows(0, hi, None) for n in ("rnn.0.fwd.cell", "rnn.1.fwd.cell")}
    ref = [store.best_cells(n, sp.TRACK, top=256, contrast=sp.CONTRAST, select_on=range(n_train))
           for n in states]  # fmt: skip
    derived = ref[0].set_index("unit").loc[164]
    assert derived.select_score < 0.15, derived  # AUC: lower inside literals, on training files
    picked = sp.literal_cell(states, tracks)
    best = max(((n, r.iloc[0]) for n, r in zip(states, ref, strict=True)),
               key=lambda p: p[1].select_strength if "select_strength" in p[1] else
               abs(p[1].select_score - 0.5))  # fmt: skip
    assert (picked.name, picked.unit) == (best[0], int(best[1].unit))
    assert picked.auc == pytest.approx(best[1].select_score)
    # a model without a derived cell: none, whatever its store holds
    assert sp.shipped_literal_cell("0" * 32) is None


def test_literal_window_finds_the_window_where_a_planted_unit_follows_the_track():
    from workbench.store._specialists import literal_window

    inside = np.zeros(400, bool)
    for a in (*range(210, 300, 20), 20, 40, 60):  # five literals near 250, three near 40
        inside[a : a + 8] = True
    values = np.random.default_rng(0).normal(size=400)
    values[200:300] += np.where(inside[200:300], -3.0, 0.0)  # the unit follows the five only
    start = literal_window(inside, ~inside, values, 100)
    assert start % 25 == 0 and 125 <= start <= 250, start  # three planted literals or more
    assert literal_window(np.zeros(400, bool), np.ones(400, bool), values, 100) == 0


def test_workbench_demo_shows_the_derived_string_literal_cell(capsys):
    from workbench.recorder._demo import run_demo

    run_demo(chars=300)
    out = " ".join(capsys.readouterr().out.split())
    assert "string-literal cell: rnn.0.fwd.cell unit 164" in out
    assert "AUC 0.954 (lower inside literals)" in out and "mean value inside literals" in out


CODE = 'x = {"a": 1, "bb": [2, 3]}\nprint(x["a"], \'c\', f"{x}")\n'


def test_ablation_ranking_is_the_single_unit_ablations(demo, small, tmp_path):
    from workbench.data import Document
    from workbench.data.python_source import annotate

    bundle = small[0]
    docs = [Document(f"d{i}.py", list(CODE * 4), annotate(CODE * 4)) for i in range(2)]
    store = demo.build_store(bundle, docs, [], tmp_path / "code")
    length = len(CODE) * 2
    ranked = demo.ablation_ranking(bundle, store, "rnn.0.fwd", n_windows=1, length=length,
                                   block=100)  # fmt: skip
    assert sorted(ranked["units"]) == list(range(256))
    texts, inside = demo.windows(store, 0, 1, length)
    assert inside[0, 1:].any() and not inside[0, 1:].all()
    u = ranked["units"][0]
    masks = np.ones((2, 256))
    masks[1, u] = 0
    bits = demo.ablation_bits(bundle, texts, "rnn.0.fwd", masks)
    target = inside[:, 1:]
    rise = bits[1][target].mean() - bits[0][target].mean()
    np.testing.assert_allclose(ranked["inside"][u], rise, rtol=1e-5, atol=1e-7)
    gap = ranked["inside"] - ranked["outside"]
    assert gap[u] == gap.max()
