"""Untrusted files and text: no unpickling, conversion, no path traversal, no XSS.

- pickles are refused by ``workbench.load`` and read by ``workbench convert`` only through
  ``torch.load(weights_only=True)``: a malicious pickle's payload never runs;
- everything save / build / report write is safetensors, zarr, JSON or HTML (no pickle);
- the Dash server's static routes never serve a file outside the folders they serve;
- hostile tokens, vocabularies and labels reach a report only as text (checked in the HTML
  and in headless chromium, where an injected script would set ``window.__xss``).
"""

import json
import os
import pickle
import re
import struct
from pathlib import Path

import numpy as np
import pytest
import torch
from browser import chromium, needs_chromium
from typer.testing import CliRunner

import workbench
from workbench.cli import app as cli
from workbench.models import architectures as A
from workbench.models.checkpoint import CheckpointError
from workbench.models.tokenizer import Tokenizer

ROOT = Path(__file__).parents[1]
PAYLOADS = [
    "<script>window.__xss=1</script>",
    '"',
    "'",
    "</textarea>",
    '<img src=x onerror="window.__xss=1">',
    "{{7*7}}",
    "</script><script>window.__xss=1</script>",
    "<svg onload=window.__xss=1>",
    "javascript:window.__xss=1",
    "&lt;b&gt;",
]
RAW_MARKERS = ["<script>window.__xss", "<img src=x", "<svg onload", "</textarea>"]


# ----------------------------------------------------------------------------- pickles


class _Boom:
    """Unpickling this runs ``os.system`` (the attack ``weights_only`` exists to stop)."""

    def __init__(self, flag: Path) -> None:
        self.flag = flag

    def __reduce__(self):
        return (os.system, (f"touch {self.flag}",))


def _charlm_state():
    torch.manual_seed(0)
    model = A.CharLM(vocab=7, embed=4, hidden=5, layers=2).eval()
    return model, {k: v.clone() for k, v in model.state_dict().items()}


@pytest.mark.parametrize("name", ["weights.pt", "weights.bin", "weights.ckpt", "no_suffix"])
def test_load_refuses_pickles_and_names_convert(tmp_path, name):
    _, state = _charlm_state()
    path = tmp_path / name
    torch.save(state, path)
    with pytest.raises(CheckpointError, match="workbench convert") as info:
        workbench.load(path)
    assert "weights_only=True" in str(info.value)


def test_malicious_pickle_never_runs(tmp_path):
    flag = tmp_path / "pwned"
    for proto in (2, 4):
        evil = tmp_path / f"evil{proto}.pt"
        evil.write_bytes(pickle.dumps({"head.weight": _Boom(flag)}, protocol=proto))
        with pytest.raises(CheckpointError, match="pickle"):
            workbench.load(evil)
        res = CliRunner().invoke(cli, ["convert", str(evil), "-o", str(tmp_path / f"o{proto}")])
        assert res.exit_code == 1
        assert "Traceback" not in res.output and "weights_only" in res.output
    # the zip format of torch.save, with the payload inside
    zipped = tmp_path / "evil_zip.pt"
    torch.save({"head.weight": _Boom(flag)}, zipped)
    res = CliRunner().invoke(cli, ["convert", str(zipped), "-o", str(tmp_path / "oz")])
    assert res.exit_code == 1 and "Traceback" not in res.output
    assert not flag.exists(), "a pickle payload ran"
    assert not (tmp_path / "oz").exists()


def _forward(kind, model, ids):
    with torch.no_grad():
        if kind == "classifier":
            return model(ids, torch.tensor([ids.shape[1]] * ids.shape[0]))
        if kind == "forecaster":
            return model(torch.randn(2, 9, model.rnn.input_size, generator=_gen()))
        return model(ids)[0]


def _gen():
    return torch.Generator().manual_seed(3)


CASES = {
    "charlm-lstm": ("charlm", dict(vocab=7, embed=4, hidden=5, layers=2)),
    "charlm-gru-residual": ("charlm", dict(vocab=7, embed=5, hidden=5, layers=3, arch="gru",
                                           residual=True)),
    "charlm-peephole": ("charlm", dict(vocab=7, embed=4, hidden=3, layers=2, arch="peephole")),
    "classifier-bigru-attention": ("classifier", dict(vocab=7, embed=4, hidden=6, classes=3,
                                                      arch="gru")),
    "classifier-lstm-last": ("classifier", dict(vocab=7, embed=4, hidden=6, classes=2, layers=2,
                                                bidirectional=False, attention=False)),
    "forecaster-lstm": ("forecaster", dict(features=2, hidden=6, horizon=3, layers=2)),
}  # fmt: skip


@pytest.mark.parametrize("case", list(CASES))
def test_convert_round_trip(tmp_path, case):
    kind, arch = CASES[case]
    torch.manual_seed(1)
    model = A.build(kind, **arch).eval()
    src = tmp_path / "trained.pt"
    state = model.state_dict()
    if case == "charlm-lstm":  # DataParallel prefix inside a training-script dict
        state = {"epoch": 3, "state_dict": {f"module.{k}": v for k, v in state.items()}}
    torch.save(state, src)
    vocab = tmp_path / "vocab.txt"
    vocab.write_text("\n".join(["<pad>", "<unk>", *"abcde"]) + "\n")
    args = ["convert", str(src), "-o", str(tmp_path / "ckpt")]
    if kind != "forecaster":
        args += ["--vocab", str(vocab)]
    if kind == "classifier":
        args += ["--labels", ",".join("xyz"[: arch["classes"]])]
    res = CliRunner().invoke(cli, args)
    assert res.exit_code == 0, res.output
    files = sorted(p.name for p in (tmp_path / "ckpt").iterdir())
    assert files == ["config.json", "model.safetensors"]
    bundle = workbench.load(tmp_path / "ckpt")
    assert bundle.kind == kind
    assert bundle.config["converted_from"]["file"] == "trained.pt"
    ids = torch.randint(2, 7, (2, 9), generator=_gen())
    np.testing.assert_array_equal(_forward(kind, model, ids), _forward(kind, bundle.model, ids))
    if kind == "classifier":
        assert bundle.labels == list("xyz"[: arch["classes"]])
    if kind != "forecaster":
        assert bundle.encode("abz")[0].tolist() == [[2, 3, 1]]


def test_convert_refuses_a_whole_model_with_the_fix(tmp_path):
    model, _ = _charlm_state()
    src = tmp_path / "whole.pt"
    torch.save(model, src)  # the whole module: a pickled class instance
    res = CliRunner().invoke(cli, ["convert", str(src), "-o", str(tmp_path / "o")])
    assert res.exit_code == 1
    assert "torch.save(model.state_dict()" in res.output and "Traceback" not in res.output
    assert not (tmp_path / "o").exists()


@pytest.mark.parametrize(
    "state, extra, message",
    [
        ({"foo.weight": torch.zeros(2, 2)}, [], "no head.weight"),
        (None, [], "--vocab"),  # a token model without its vocabulary
        (None, ["--vocab", "VOCAB_SHORT"], "the vocabulary has 4 tokens"),
        (None, ["--kind", "forecaster"], "forecaster"),
        ("not a dict", [], "not a state_dict"),
    ],
)
def test_convert_bad_inputs(tmp_path, state, extra, message):
    if state is None:
        state = _charlm_state()[1]
    torch.save(state, tmp_path / "w.pt")
    (tmp_path / "short.txt").write_text("<pad>\n<unk>\na\nb\n")
    extra = [str(tmp_path / "short.txt") if e == "VOCAB_SHORT" else e for e in extra]
    res = CliRunner().invoke(
        cli, ["convert", str(tmp_path / "w.pt"), "-o", str(tmp_path / "o"), *extra]
    )
    assert res.exit_code == 1, res.output
    assert message in res.output and "Traceback" not in res.output


# ----------------------------------------------------------------------------- no pickle written


def _kind_of(path: Path, rel: Path) -> str:
    """What a written file is: json, safetensors, zarr-chunk or html; else 'unknown'."""
    data = path.read_bytes()
    assert not data.startswith(b"\x80"), f"{path} starts like a pickle"
    assert b"cbuiltins\n" not in data and b"\x8c\x08builtins" not in data, path
    if path.suffix == ".json":
        json.loads(data)
        return "json"
    if path.suffix == ".safetensors":
        (n,) = struct.unpack("<Q", data[:8])
        header = json.loads(data[8 : 8 + n])
        assert all("dtype" in v for k, v in header.items() if k != "__metadata__")
        return "safetensors"
    if path.suffix == ".html":
        return "html"
    if "c" in rel.parts[:-1]:  # zarr v3 chunk keys: <array>/c/<i>/<j>
        return "zarr-chunk"
    return "unknown"


def test_save_build_and_report_write_no_pickle(tmp_path):
    from test_store import SETTINGS, make_corpus, make_model

    from workbench.models.checkpoint import save
    from workbench.store import StateStore

    model, tok = make_model()
    ids = torch.tensor([tok.encode(list("a(b)"))])
    trace = workbench.record(model, ids)
    trace.save(tmp_path / "t.safetensors")
    save(tmp_path / "ckpt", model, "charlm", "toy", dict(vocab=len(tok), embed=6, hidden=10,
                                                         layers=2), tok)  # fmt: skip
    store = StateStore.build((model, tok), make_corpus(), tmp_path / "store", **SETTINGS)
    from workbench.store._build import build

    build((model, tok), make_corpus(), tmp_path / "half", stop_after=2, **SETTINGS)
    kinds = {}
    for p in sorted(tmp_path.rglob("*")):
        if p.is_dir():
            continue
        rel = p.relative_to(tmp_path)
        if p.suffix == ".npz":  # pending rows of an unfinished build: plain numeric .npy
            with np.load(p, allow_pickle=False) as z:
                assert all(z[k].dtype != object for k in z.files)
            kinds[str(rel)] = "npz"
            continue
        kinds[str(rel)] = _kind_of(p, rel)
    assert "unknown" not in kinds.values(), [k for k, v in kinds.items() if v == "unknown"]
    assert kinds["t.safetensors"] == "safetensors"
    assert {"json", "zarr-chunk"} <= set(kinds.values())
    assert workbench.Trace.load(tmp_path / "t.safetensors").names == trace.names
    assert store.n_tokens > 0


def test_package_source_never_unpickles():
    bad = re.compile(r"pickle\.loads?\(|allow_pickle=True|weights_only=False|cloudpickle\.load")
    for path in (ROOT / "workbench").rglob("*.py"):
        text = path.read_text()
        assert not bad.search(text), f"{path} may unpickle"
        for m in re.finditer(r"torch\.load\(", text):
            call = text[m.start() : m.start() + 200]  # the call and its arguments
            assert "weights_only=True" in call, f"{path}: {call}"


# ----------------------------------------------------------------------------- path traversal

TRAVERSALS = [
    "/assets/../pyproject.toml",
    "/assets/%2e%2e/pyproject.toml",
    "/assets/%2e%2e%2fpyproject.toml",
    "/assets/..%2fpyproject.toml",
    "/assets/%252e%252e%252fpyproject.toml",
    "/assets/..%5cpyproject.toml",
    "/assets//etc/passwd",
    "/assets/%2fetc%2fpasswd",
    "/static/../pyproject.toml",
    "/static/%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/static/%2fetc%2fpasswd",
    "/_dash-component-suites/dash/../../../pyproject.toml",
    "/_dash-component-suites/dash/%2e%2e%2f%2e%2e%2f%2e%2e%2fpyproject.toml",
    "/_dash-component-suites/dash/..%2f..%2f..%2f..%2fetc%2fpasswd",
    "/_dash-component-suites/dash/..\\..\\..\\pyproject.toml",
    "/_dash-component-suites/dash/%2fetc%2fpasswd",
    "/_dash-component-suites/workbench/app/_factory.py",
    "/_dash-component-suites/dash/__init__.py",
    "/_dash-component-suites/os/path.py",
    "/%2e%2e/%2e%2e/pyproject.toml",
    "/../../etc/passwd",
]
SECRETS = [b"[build-system]", b"root:x:0:0", b"def create_app", b"from __future__"]


@pytest.fixture(scope="module")
def client():
    from workbench.app import AppContext, create_app

    app = create_app(AppContext())
    return app.server.test_client()


@pytest.mark.parametrize("path", TRAVERSALS)
def test_static_routes_do_not_escape(client, path):
    res = client.get(path)
    body = res.get_data()
    assert not any(s in body for s in SECRETS), f"{path} served a file's contents"
    assert 400 <= res.status_code < 500, (path, res.status_code)


def test_page_paths_still_get_the_app(client):
    for path in ("/", "/explain", "/states?model=python"):
        res = client.get(path)
        assert res.status_code == 200 and b'id="react-entry-point"' in res.get_data()


def test_static_routes_still_serve_their_own_files(client):
    res = client.get("/_dash-component-suites/dash/dcc/dash_core_components.js")
    assert res.status_code == 200 and len(res.get_data()) > 1000


# ----------------------------------------------------------------------------- XSS in reports


@pytest.fixture(scope="module")
def hostile_report(tmp_path_factory):
    """A report of a real classifier whose vocabulary, labels and meta tracks are payloads."""
    from workbench import viz
    from workbench.explainers import explain
    from workbench.reports import report

    torch.manual_seed(0)
    tok = Tokenizer(["<pad>", "<unk>", *PAYLOADS, "ok"], "word")
    model = A.Classifier(len(tok), 6, 5, 3).eval()
    ids = torch.tensor([list(range(2, len(tok)))])
    lengths = torch.tensor([ids.shape[1]])
    tokens = [tok.decode(ids[0])]
    with torch.no_grad():
        trace = workbench.record(model, ids, lengths)
    trace.tokens = tokens
    trace.meta[PAYLOADS[0]] = PAYLOADS[4]
    exps = [explain(model, ids, None, m, tokens=tokens, lengths=lengths)
            for m in ("occlusion", "saliency")]  # fmt: skip
    table = {"columns": PAYLOADS[:4], "rows": [PAYLOADS[4:8], PAYLOADS[6:10]]}
    meta = {"title": PAYLOADS[6], "text": list(PAYLOADS), "table": table}
    labels = {"title": "labels " + PAYLOADS[5], "table": {p: p for p in PAYLOADS}}
    fig = viz.attribution_heatmap({PAYLOADS[4]: np.arange(len(tokens[0]), dtype=float)},
                                  tokens[0])  # fmt: skip
    path = tmp_path_factory.mktemp("xss") / "r.html"
    report([trace, *exps, meta, labels, fig], path, title=PAYLOADS[0])
    return path


def test_report_html_escapes_every_payload(hostile_report):
    text = hostile_report.read_text()
    for marker in RAW_MARKERS:
        assert marker not in text, marker
    assert "&lt;img src=x onerror=" in text  # shown as text
    assert "{{7*7}}" in text or "{{7*7}}".replace("{", "&#123;") in text
    for block in re.findall(r'<script type="application/json"[^>]*>(.*?)</script>', text, re.S):
        assert "<" not in block  # JSON data cannot close its script tag


@needs_chromium
def test_no_payload_runs_in_chromium(hostile_report):
    with chromium() as browser:
        page = browser.new_context(offline=True).new_page()
        dialogs = []
        page.on("dialog", lambda d: (dialogs.append(d.message), d.dismiss()))
        page.goto(hostile_report.as_uri())
        page.wait_for_function("window.wbReport && window.wbReport.ready", timeout=30_000)
        page.mouse.move(400, 300)
        page.wait_for_timeout(300)
        assert page.evaluate("window.__xss") is None
        assert not dialogs
        body = page.inner_text("body")
        assert "{{7*7}}" in body and "49" not in body.split("labels")[1][:20]
        assert "<img src=x onerror=" in body  # visible as text
        assert page.title() == PAYLOADS[0]
        assert page.evaluate("document.querySelectorAll('img, svg[onload]').length") == 0
