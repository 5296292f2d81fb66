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
from workbench.explainers import ExplainError
from workbench.models.checkpoint import CheckpointError
from workbench.recorder import RecordingError
from workbench.recorder.edits import zero
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
        self.cleanups: list[Callable] = []  # run after the case, last first

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
    # ------------------------------------------------------------------ recorder and explainers
    Case("nested Recorders on one module: both traces whole", "python", lambda env: _nested(env),
         "", error=None),
    Case("nested Recorders with an edit", "python", lambda env: _nested_edit(env), "nested",
         error=RecordingError),
    Case("non-integer target (1.7)", "python",
         lambda env: _explain_ids(env, torch.tensor([[2, 3]]), target=1.7, method="saliency"),
         "not an integer", error=ExplainError),
    Case("non-integer Target unit (3.7)", "python",
         lambda env: workbench.Target("lm.rnn.0.fwd.cell", unit=3.7), "must be an integer",
         error=ExplainError),
    Case("non-integer edit units [3.7, 17.2]", "python",
         lambda env: _edit(env, zero([3.7, 17.2])), "must be an integer", error=RecordingError),
    Case("edit with a negative start (-2)", "python", lambda env: _edit(env, zero(1, start=-2)),
         "start must be >= 0", error=RecordingError),
    Case("edit starting past the last step", "python",
         lambda env: _edit(env, zero(1, start=50)), "nothing would be edited",
         error=RecordingError),
    Case("LRP epsilon=0", "python",
         lambda env: _explain_ids(env, torch.tensor([[2, 3]]), method="lrp", epsilon=0),
         "epsilon must be a finite number > 0", error=ExplainError),
    Case("LRP epsilon=NaN", "python",
         lambda env: _explain_ids(env, torch.tensor([[2, 3]]), method="lrp", epsilon=math.nan),
         "epsilon must be a finite number > 0", error=ExplainError),
    Case("NaN weights: a warning naming the parameter", "python", lambda env: _nan_weights(env),
         "", error=None),
    Case("training mode with dropout: a warning", "python", lambda env: _dropout(env), "",
         error=None),
    Case("integrated gradients with n_steps=10**9", "python",
         lambda env: _explain_ids(env, torch.tensor([[2, 3]]), n_steps=10**9),
         "n_steps must be between 1 and 10,000", error=ExplainError),
    Case("LIME with n_samples=10**9", "python",
         lambda env: _explain_ids(env, torch.tensor([[2, 3]]), method="lime", n_samples=10**9),
         "n_samples must be between", error=ExplainError),
    Case("trace file that is a FIFO", "python", lambda env: workbench.Trace.load(_fifo(env)),
         "not a regular file", error=ValueError),
    Case("record a batch of 0 rows: an empty trace", "python", lambda env: _empty_batch(env),
         "", error=None),
    Case("record a sequence of length 0", "python",
         lambda env: workbench.record(env.charlm()[0], torch.zeros(2, 0, dtype=torch.long)),
         "sequence length 0", error=RecordingError),
    Case("model on the meta device", "python",
         lambda env: workbench.record(env.charlm()[0].to("meta"), torch.tensor([[2, 3]])),
         "'meta' device", error=RecordingError),
    Case("out-of-vocabulary ids (record)", "python",
         lambda env: workbench.record(env.charlm()[0], torch.tensor([[2, 3, 999]])),
         "token ids 999 are outside the vocabulary", error=RecordingError),
    Case("out-of-vocabulary ids (explain)", "python",
         lambda env: _explain_ids(env, torch.tensor([[2, -4]]), method="saliency"),
         "token ids -4 are outside the vocabulary", error=ExplainError),
    Case("non-integer search cells [3.7, 17.2]", "python",
         lambda env: env.store().match("rnn.0.fwd.cell", [3.7, 17.2]), "not an integer",
         error=SearchError),
    # ------------------------------------------------------------------------------ serve
    Case("serve --port 70000", "cli", lambda env: ["serve", "--port", "70000", "--no-build"],
         "--port 70000 is outside 1-65535; pass a port in that range"),
    Case("serve on a busy port (before ready)", "cli", lambda env: _busy_port(env),
         "is in use; pass --port"),
    Case("serve STORE --model OTHER", "cli",
         lambda env: ["serve", str(env.store().path), "--model", "parens", "--port", "8139"],
         "recorded from another model"),
]  # fmt: skip

# ---------------------------------------------------------------------- corpus, store and CLI
CASES += [
    Case("FIFO in a corpus folder (it used to hang)", "python",
         lambda env: _no_hang(lambda: workbench.data.from_text_folder(_fifo_folder(env))),
         "not a regular file", error=DataError),
    Case("symlink leading out of a corpus folder", "python",
         lambda env: workbench.data.from_text_folder(_link_out(env)),
         "outside the corpus folder", error=DataError),
    Case("--chunk-tokens 99999999999", "cli",
         lambda env: ["record", "--model", "parens", "--corpus", "parens", "--max-tokens", "300",
                      "--chunk-tokens", "99999999999", "--out", env / "st"],
         "from 1 to", must_not_exist=["st"]),
    Case("--max-tokens 0", "cli",
         lambda env: ["record", "--model", "parens", "--corpus", "parens", "--max-tokens", "0",
                      "--out", env / "st"], "max_tokens (--max-tokens) must be",
         must_not_exist=["st"]),
    Case("import with chunk_tokens=10**11 (nothing half-written)", "python",
         lambda env: StateStore.from_lstmvis(env.store().export(env / "proj"), env / "imp",
                                             chunk_tokens=10**11),
         "chunk_tokens", error=StoreError, must_not_exist=["imp"]),
    Case("tampered manifest: n_tokens x 10", "python",
         lambda env: StateStore.open(_tampered(env, "n_tokens", lambda v: v * 10)),
         "manifest field 'n_tokens'", error=StoreError),
    Case("tampered manifest: dtype", "python",
         lambda env: StateStore.open(_tampered(env, "dtype", lambda v: "float32")),
         "manifest field 'dtype'", error=StoreError),
    Case("word model given a character corpus", "cli",
         lambda env: ["record", "--model", "sentiment", "--corpus", "python", "--max-tokens",
                      "300", "--out", env / "st"], "this model reads words",
         must_not_exist=["st"]),
    Case("character model given a word corpus", "cli",
         lambda env: ["record", "--model", "parens", "--corpus", "sentiment", "--max-tokens",
                      "300", "--out", env / "st"], "this model reads characters",
         must_not_exist=["st"]),
    Case("config.json without `kind`", "cli",
         lambda env: ["explain", "-m", _no_kind(env), "-i", "ab", "--methods", "saliency"],
         "has no field 'kind'"),
    Case("`export --out` an existing file", "cli",
         lambda env: ["export", str(env.store().path), "--out", _file(env)], "is a file"),
    Case("two builds into one store folder at once", "cli",
         lambda env: ["record", "--model", "parens", "--corpus", "parens", "--max-tokens", "300",
                      "--out", _locked(env)], "another build is writing here"),
    Case("record into a read-only folder", "cli",
         lambda env: ["record", "--model", "parens", "--corpus", "parens", "--max-tokens", "300",
                      "--out", str(Path(_read_only(env, env.tmp / "ro")) / "st")],
         "pick a writable path"),
    Case("projection of a read-only store: returned, said not cached", "python",
         lambda env: _read_only_projection(env), "", error=None),
]  # fmt: skip


def _no_hang(fn, seconds: float = 60.0):
    """``fn()``'s result or error; fails instead of hanging when it does not return."""
    import threading

    out: dict = {}

    def work():
        try:
            out["value"] = fn()
        except BaseException as err:  # noqa: BLE001 - raised again below
            out["error"] = err

    worker = threading.Thread(target=work, daemon=True)
    worker.start()
    worker.join(seconds)
    assert not worker.is_alive(), f"still running after {seconds} s (it hangs)"
    if "error" in out:
        raise out["error"]
    return out["value"]


def _fifo_folder(env) -> str:
    import os

    folder = env.text_folder(data=b"hello\n")
    os.mkfifo(Path(folder) / "b.txt")
    return folder


def _link_out(env) -> str:
    (env.tmp / "secret.txt").write_text("outside the corpus\n")
    folder = env.text_folder(data=b"hello\n")
    (Path(folder) / "b.txt").symlink_to(env.tmp / "secret.txt")
    return folder


def _tampered(env, field: str, change) -> Path:
    import json

    path = env.store().path
    meta = json.loads((path / "zarr.json").read_text())
    manifest = meta["attributes"]["workbench_store"]
    manifest[field] = change(manifest[field])
    (path / "zarr.json").write_text(json.dumps(meta))
    return path


def _no_kind(env) -> str:
    import json

    from workbench.models.checkpoint import save

    model, tok = env.charlm()
    arch = dict(vocab=len(tok), embed=6, hidden=10, layers=2)
    save(env.tmp / "ck", model, "charlm", "t", arch, tokenizer=tok)
    config = json.loads((env.tmp / "ck" / "config.json").read_text())
    del config["kind"]
    (env.tmp / "ck" / "config.json").write_text(json.dumps(config))
    return str(env.tmp / "ck")


def _file(env) -> str:
    (env.tmp / "afile").write_text("not a folder\n")
    return str(env.tmp / "afile")


def _locked(env) -> str:
    """A store folder whose build lock another process holds (until the case ends)."""
    import subprocess
    import sys

    path = env.tmp / "st"
    code = (
        "import sys; from workbench.store._lock import build_lock\n"
        f"with build_lock({str(path)!r}):\n"
        "    print('locked', flush=True); sys.stdin.read()\n"
    )
    child = subprocess.Popen(
        [sys.executable, "-c", code], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True
    )
    env.cleanups.append(lambda: (child.stdin.close(), child.wait(30)))
    assert child.stdout.readline().strip() == "locked"
    return str(path)


def _read_only(env, folder: Path) -> str:
    """``folder``, created and made read-only until the case ends."""
    folder.mkdir()
    _read_only_dir(env, folder)
    return str(folder)


def _read_only_projection(env):
    import warnings

    store = env.store()
    for sub in store.path.rglob("*"):
        if sub.is_dir():
            _read_only_dir(env, sub)
    _read_only_dir(env, store.path)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        proj = store.projection("rnn.0.fwd.cell", method="pca", progress=False)
    assert proj.embedding.shape == (store.n_tokens, 2)
    said = [str(w.message) for w in caught if "not cached" in str(w.message)]
    assert said and str(store.path) in said[0], [str(w.message) for w in caught]
    assert not (store.path / "projections").exists() or not any(
        (store.path / "projections").iterdir()
    )


def _read_only_dir(env, folder: Path) -> None:
    """Make ``folder`` read-only (chmod; ``chattr +i`` where permission bits do not bind
    root) until the case ends."""
    import os
    import subprocess

    mode = folder.stat().st_mode
    os.chmod(folder, 0o555)
    env.cleanups.append(lambda: os.chmod(folder, mode))
    if os.access(folder, os.W_OK):
        if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode:
            pytest.skip("cannot make a folder read-only here")
        env.cleanups.append(lambda: subprocess.run(["chattr", "-i", str(folder)], check=True))


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
    try:
        return _run_case(case, tmp, env)
    finally:
        for undo in reversed(env.cleanups):
            undo()


def _run_case(case: Case, tmp: Path, env: Env) -> str:
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


# ---------------------------------------------------------------- recorder and explainer cases
_IDS = torch.tensor([[2, 3, 4, 5, 6], [6, 5, 4, 3, 2]])


def _nested(env):
    model = env.charlm()[0]
    with workbench.Recorder(model) as outer, workbench.Recorder(model, names="rnn.1.*") as inner:
        model(_IDS)
    alone = workbench.record(model, _IDS)
    for rec in (outer, inner):
        for name in rec.trace.names:
            assert rec.trace[name].shape == alone[name].shape == (2, 5, 10), name
            torch.testing.assert_close(rec.trace[name], alone[name])


def _nested_edit(env):
    model = env.charlm()[0]
    with workbench.Recorder(model):
        workbench.intervene(model, _IDS, edits={"rnn.0.fwd.cell": zero(1)})


def _edit(env, fn):
    return workbench.intervene(env.charlm()[0], _IDS, edits={"rnn.0.fwd.cell": fn})


def _nan_weights(env):
    model = env.charlm()[0]
    with torch.no_grad():
        model.rnn.weight_ih_l0[0, 0] = math.nan
    with pytest.warns(RuntimeWarning, match="weight_ih_l0 holds NaN/inf"):
        workbench.record(model, _IDS)


def _dropout(env):
    lm = env.charlm()[0]
    lm.drop.p = 0.5

    class Last(nn.Module):  # the last step's logits, in training mode
        def __init__(self) -> None:
            super().__init__()
            self.lm = lm

        def forward(self, x):
            return self.lm(x)[0][:, -1]

    with pytest.warns(RuntimeWarning, match="not reproducible; call model.eval"):
        workbench.explain(Last().train(), _IDS, 2, "saliency")


def _fifo(env):
    import os

    if not hasattr(os, "mkfifo"):
        pytest.skip("no FIFOs here")
    os.mkfifo(env.tmp / "t.safetensors")
    return env.tmp / "t.safetensors"


def _empty_batch(env):
    trace = workbench.record(env.charlm()[0], torch.zeros(0, 5, dtype=torch.long))
    assert trace["rnn.1.fwd.cell"].shape == (0, 5, 10) and trace.output[0].shape[0] == 0
