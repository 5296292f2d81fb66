"""Bad input across the CLI, the Python API (and the app): a clear error, nothing half-written.

Every case lives in :data:`CASES` (one table, also printed for the README by
``demos/bad_input_table.py``). A case is run in a fresh temporary folder holding the fixtures
below; it must fail with an error whose message matches ``message`` (CLI cases: exit code
!= 0, the message on stderr, no traceback), or, where ``error`` is None, succeed and pass its
own check. Paths in ``must_not_exist`` must not exist afterwards (nothing half-written).

App cases: append ``Case(..., where="app", run=...)`` entries whose ``run(env)`` drives the
Dash test client (``env.client()``); the runner below treats them as Python cases.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

import workbench
from workbench.data import DataError
from workbench.explain import ExplainError
from workbench.models.checkpoint import CheckpointError
from workbench.recorder import RecordingError
from workbench.store import StateStore, StoreError, StoreIncompleteError
from workbench.store.search import SearchError


@dataclass
class Case:
    """One bad input and the error it must produce.

    Attributes
    ----------
    name : str
        What is wrong, in a few words (the table's first column).
    where : {"cli", "python", "app"}
    run : callable
        ``run(env)``: CLI cases return the argument list; others do the call.
    message : str
        A substring the error message must contain.
    error : type or None
        The exception type (Python cases); None: the call must succeed (``check`` holds).
    must_not_exist : list of str
        Paths (relative to the case folder) that must not exist after the failure.
    """

    name: str
    where: str
    run: Callable
    message: str
    error: type | None = ValueError
    must_not_exist: list[str] = field(default_factory=list)


class Env:
    """Fixtures of one case: a folder, tiny real models and stores made on demand."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp

    def __truediv__(self, name: str) -> str:
        return str(self.tmp / name)

    @staticmethod
    def charlm():
        from test_store import make_model

        return make_model()

    @staticmethod
    def docs():
        from test_store import make_corpus

        return make_corpus()

    def store(self, name="store", **kw):
        from test_store import SETTINGS

        return StateStore.build(self.charlm(), self.docs(), self.tmp / name, **SETTINGS, **kw)

    def half_store(self, name="half"):
        from test_store import SETTINGS

        from workbench.store._build import build

        build(self.charlm(), self.docs(), self.tmp / name, stop_after=1, **SETTINGS)
        return self.tmp / name

    def pickle_file(self, name="weights.pt"):
        torch.save(self.charlm()[0].state_dict(), self.tmp / name)
        return str(self.tmp / name)

    def text_folder(self, name="texts", data=b"caf\xe9 au lait\n"):
        (self.tmp / name).mkdir()
        (self.tmp / name / "a.txt").write_bytes(data)
        return str(self.tmp / name)

    def client(self):
        from workbench.app import AppContext, create_app

        return create_app(AppContext()).server.test_client()


def _sentiment():
    return workbench.load("sentiment")


def _explain_ids(env, ids, **kw):
    model, _ = env.charlm()

    class Last(nn.Module):  # a classifier view of the char LM: the last step's logits
        def __init__(self) -> None:
            super().__init__()
            self.lm = model

        def forward(self, x):
            return self.lm(x)[0][:, -1]

    return workbench.explain(Last().eval(), ids, **kw)


def _corrupt_chunk(env):
    store = env.store()
    name = store.names[0]
    chunk = store.path / "states" / name / "c" / "0" / "0"
    chunk.write_bytes(chunk.read_bytes()[:10])
    return StateStore.open(store.path).states(name)[0:5]


def _long_text():
    return "word " * 100_000


CASES: list[Case] = [
    # ------------------------------------------------------------------ text input
    Case("empty text (word model)", "python", lambda env: _sentiment().encode(""), "empty"),
    Case("whitespace-only text", "python", lambda env: _sentiment().encode(" \t\n "), "empty"),
    Case("empty --input", "cli",
         lambda env: ["explain", "-m", "sentiment", "-i", "", "--methods", "saliency"], "empty"),
    Case("whitespace-only --input", "cli",
         lambda env: ["explain", "-m", "sentiment", "-i", "   ", "--methods", "saliency"],
         "empty"),
    Case("only unknown tokens: accepted, every token is <unk>", "python",
         lambda env: _only_unknown(), "", error=None),
    Case("500k-character input (char model)", "cli",
         lambda env: ["explain", "-m", "parens", "-i", _long_text(), "--methods", "saliency"],
         "limit is"),
    Case("100k-word report (nothing written)", "cli",
         lambda env: ["report", "-m", "sentiment", "-i", _long_text(), "-o", env / "r.html"],
         "limit is", must_not_exist=["r.html"]),
    Case("non-UTF-8 text file", "python", lambda env: workbench.data.from_text_folder(
        env.text_folder()), "not UTF-8", error=DataError),
    Case("non-UTF-8 corpus folder to `record`", "cli",
         lambda env: ["record", "--model", "parens", "--corpus", env.text_folder(),
                      "--out", env / "st"], "not UTF-8", must_not_exist=["st"]),
    # ------------------------------------------------------------------ series
    Case("NaN in a series file", "python", lambda env: _series_file(env, "nan"), "NaN/inf",
         error=DataError),
    Case("inf in a series --input", "cli",
         lambda env: ["explain", "-m", "sunspots", "-i", "1, 2, inf, 4", "--methods", "saliency"],
         "NaN or infinite"),
    Case("NaN in float inputs to explain", "python",
         lambda env: workbench.explain(workbench.load("sunspots").model,
                                       torch.tensor([[[1.0], [math.nan], [2.0]]]), 0, "saliency"),
         "NaN", error=ExplainError),
    # ------------------------------------------------------------------ models and tensors
    Case("wrong input rank (3-d ids)", "python",
         lambda env: workbench.record(env.charlm()[0], torch.ones(1, 2, 3, dtype=torch.long)),
         "Expected input to be 2D or 3D", error=ValueError),
    Case("wrong dtype (float ids)", "python",
         lambda env: workbench.record(env.charlm()[0], torch.rand(1, 5)), "Long, Int",
         error=RuntimeError),
    Case("model without recurrent modules", "python",
         lambda env: workbench.record(nn.Sequential(nn.Linear(3, 3)), torch.rand(1, 3)),
         "HookPoint", error=RecordingError),
    Case("unknown recorded name (record)", "python",
         lambda env: workbench.record(env.charlm()[0], torch.tensor([[2, 3]]), names="nope.*"),
         "matches nothing", error=RecordingError),
    Case("unknown recorded name (store)", "python", lambda env: env.store().states("nope"),
         "not in this store", error=KeyError),
    Case("unknown method", "python",
         lambda env: _explain_ids(env, torch.tensor([[2, 3]]), method="magic"), "magic",
         error=ExplainError),
    Case("unknown --methods", "cli",
         lambda env: ["explain", "-m", "parens", "-i", "(1)", "--methods", "magic"], "magic"),
    Case("target class out of range", "python",
         lambda env: _explain_ids(env, torch.tensor([[2, 3]]), target=99, method="saliency"),
         "99", error=ExplainError),
    Case("unknown hidden-unit target", "python",
         lambda env: _explain_ids(env, torch.tensor([[2, 3]]), method="saliency",
                                  target=workbench.Target("lm.rnn.9.fwd.cell", unit=0, step=0)),
         "lm.rnn.9.fwd.cell", error=ExplainError),
    Case("NaN threshold", "python",
         lambda env: env.store().match("rnn.0.fwd.cell", [0], threshold=math.nan), "finite",
         error=SearchError),
    Case("brush outside the document", "python",
         lambda env: env.store().select_cells("rnn.0.fwd.cell", 2, 0, 10_000),
         "outside document", error=SearchError),
    Case("cell index out of range", "python",
         lambda env: env.store().match("rnn.0.fwd.cell", [0, 999]), "[0, 10)",
         error=SearchError),
    # ------------------------------------------------------------------ files and stores
    Case("pickle checkpoint", "cli",
         lambda env: ["explain", "-m", env.pickle_file(), "-i", "ab", "--methods", "saliency"],
         "workbench convert"),
    Case("checkpoint with broken config.json", "python", lambda env: _broken_config(env),
         "not valid JSON", error=CheckpointError),
    Case("missing model", "cli",
         lambda env: ["report", "-m", env / "nope", "-i", "ab", "-o", env / "r.html"],
         "no checkpoint folder", must_not_exist=["r.html"]),
    Case("mismatched model and store", "python",
         lambda env: StateStore.open(env.store().path, model=_other()),
         "another model", error=StoreError),
    Case("store path that is not a store", "python",
         lambda env: StateStore.open(env.text_folder()), "not a workbench state store",
         error=StoreError),
    Case("record into a folder that is not a store", "cli",
         lambda env: ["record", "--model", "parens", "--corpus", "parens", "--max-tokens", "300",
                      "--out", env.text_folder(data=b"hello")], "not a workbench store"),
    Case("interrupted build opened before resume", "python",
         lambda env: StateStore.open(env.half_store()), "run the same build",
         error=StoreIncompleteError),
    Case("corrupted store chunk", "python", _corrupt_chunk, "corrupt", error=StoreError),
    Case("foreign trace file", "python",
         lambda env: workbench.Trace.load(env.pickle_file("t.safetensors")),
         "not a safetensors trace", error=ValueError),
    Case("serve --port 70000", "cli", lambda env: ["serve", "--port", "70000", "--no-build"],
         "--port 70000 is outside 1-65535; pass a port in that range"),
    Case("serve on a busy port (before ready)", "cli", lambda env: _busy_port(env),
         "is in use; pass --port"),
    Case("serve STORE --model OTHER", "cli",
         lambda env: ["serve", str(env.store().path), "--model", "parens", "--port", "8139"],
         "recorded from another model"),
]  # fmt: skip


def _busy_port(env):
    import socket

    env.busy = socket.socket()  # held by the case's env while the command runs
    env.busy.bind(("127.0.0.1", 0))
    env.busy.listen(1)
    return ["serve", "--port", str(env.busy.getsockname()[1]), "--no-build"]


def _other():
    from test_store import make_model

    return make_model(seed=1)[0]


def _only_unknown():
    b = _sentiment()
    ids, lengths = b.encode("qqzxv wwkjh")
    assert ids.tolist() == [[1, 1]]  # both <unk>
    e = workbench.explain(b.model, ids, None, "saliency", lengths=lengths)
    assert torch.isfinite(e.attributions).all()


def _series_file(env, value):
    path = env.tmp / "s.csv"
    path.write_text("kw\n" + "\n".join(["1.0"] * 20 + [value] + ["2.0"] * 20) + "\n")
    from workbench.data.series import from_file

    return from_file(path)


def _broken_config(env):
    from workbench.models.checkpoint import save

    model, tok = env.charlm()
    save(env.tmp / "ck", model, "charlm", "t", dict(vocab=len(tok), embed=6, hidden=10, layers=2))
    (env.tmp / "ck" / "config.json").write_text('{"schema": ')
    return workbench.load(env.tmp / "ck")


def run_case(case: Case, tmp: Path) -> str:
    """Run one case; returns the error message it produced (checked)."""
    env = Env(tmp)
    if case.where == "cli":
        from typer.testing import CliRunner

        from workbench.cli import app

        args = case.run(env)
        res = CliRunner().invoke(app, args)
        assert res.exit_code != 0, f"{case.name}: exit code 0\n{res.output}"
        stderr = res.stderr
        assert case.message in stderr, f"{case.name}: {stderr!r}"
        assert "Traceback" not in res.output, res.output
        lines = stderr.strip().splitlines()
        if any(line.startswith("╭─ Error") for line in lines):  # a usage error in a box
            lines = lines[[i for i, x in enumerate(lines) if x.startswith("╭─ Error")][0] + 1 :]
        message = " ".join(x.strip("│ ").strip() for x in lines if x.strip("│ ─╭╮╰╯"))
    elif case.error is None:
        case.run(env)
        message = ""
    else:
        with pytest.raises(case.error) as info:
            case.run(env)
        message = str(info.value.args[0] if info.value.args else info.value)
        assert case.message in message, f"{case.name}: {message!r}"
    for rel in case.must_not_exist:
        assert not (tmp / rel).exists(), f"{case.name}: {rel} was written"
    return message


def test_at_least_twenty_cases_across_cli_and_python():
    assert len(CASES) >= 20
    assert {c.where for c in CASES} >= {"cli", "python"}
    assert len({c.name for c in CASES}) == len(CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_bad_input(case, tmp_path):
    run_case(case, tmp_path)


def test_nothing_half_written_after_a_refused_record(tmp_path):
    """A store build refused before it starts leaves no folder; a refused resume no change."""
    env = Env(tmp_path)
    path = env.half_store()
    before = sorted((p.relative_to(path), p.stat().st_size) for p in path.rglob("*"))
    with pytest.raises(StoreError, match="other settings"):
        from test_store import SETTINGS

        StateStore.build((_other(), env.charlm()[1]), env.docs(), path, **SETTINGS)
    after = sorted((p.relative_to(path), p.stat().st_size) for p in path.rglob("*"))
    assert before == after
    np.testing.assert_array_equal(
        StateStore.build(env.charlm(), env.docs(), path, progress=False, chunk_tokens=64,
                         segment_tokens=150, window=32, batch_size=3).boundaries,
        env.store("fresh").boundaries,
    )  # fmt: skip
