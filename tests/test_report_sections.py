"""Report sections for selected cells + their matches and for perturbation results.

Real shipped model (the Python-source char LM), a real store on disk holding hostile text,
real interventions; the sections are checked against independent computations, for
escaping, determinism and self-containment.
"""

import html
import json
import re

import numpy as np
import pytest
import torch

import workbench
from workbench.data._document import Document
from workbench.data.python_source import annotate
from workbench.models.checkpoint import shipped
from workbench.recorder.edits import zero
from workbench.reports import matches_section, perturbation_section, report
from workbench.store import search

EVIL = 's = "<script>alert(1)</script>"  # </textarea> & <img src=x onerror=alert(2)>\n'
SOURCE = (
    "def f(a, b):\n"
    '    """Add two numbers."""\n'
    "    return a + b  # the sum\n"
    "\n"
    "x = f(1, 2)\n"
    "print('x is', x)\n"
)
NAME = "rnn.1.fwd.cell"


@pytest.fixture(scope="module")
def bundle():
    return workbench.load(shipped("python"))


@pytest.fixture(scope="module")
def store(bundle, tmp_path_factory):
    texts = [EVIL + SOURCE, SOURCE + EVIL * 2, SOURCE.replace("a", "q") + EVIL]
    docs = [Document(f"doc{i}<b>", list(t), annotate(t)) for i, t in enumerate(texts)]
    path = tmp_path_factory.mktemp("rs") / "store"
    return workbench.StateStore.build(bundle, docs, path, names="rnn.1.*", progress=False)


@pytest.fixture(scope="module")
def matches(store):
    doc = store.document(0)
    # brush the string literal "<script>..." in the first document and take what is selected
    start = EVIL.index('"') + 1
    for thr in (0.3, 0.2, 0.1, 0.05):
        for a in range(start, start + 8):
            cells = store.select_cells(NAME, 0, a, a + 3, thr, (1, 0))
            if cells.size:
                m = store.match(NAME, cells, thr, (1, 0), top_k=10)
                return m, cells, thr, (a, a + 3), doc
    pytest.fail("no cells selected anywhere in the string")


def _section_html(page: str, title: str) -> str:
    i = page.index(f"<h2>{html.escape(title)}</h2>")
    return page[i : page.index("</section>", i)]


def _links(page: str) -> list[str]:
    """``src`` / ``href`` attribute values of the page's elements (script text is not markup)."""
    from html.parser import HTMLParser

    found = []

    class _P(HTMLParser):
        def handle_starttag(self, tag, attrs):
            found.extend(
                v for k, v in attrs if k in ("src", "href") and not (v or "").startswith("#")
            )

    _P().feed(page)
    return found


def _figures(part: str) -> list[dict]:
    specs = re.findall(r'<script type="application/json" id="wb-fig-\d+-data">(.*?)</script>', part)
    return [json.loads(s) for s in specs]


def test_matches_section_lists_the_spans_with_their_tokens(store, matches):
    m, cells, thr, _brush, _doc = matches
    sec = matches_section(m, store, name=NAME, threshold=thr, pad=(1, 0), context=5)
    assert sec.title == "Selected cells and their matches"
    assert ", ".join(map(str, cells.tolist())) in sec.text[0] and NAME in sec.text[0]
    assert f"{m.n_candidates} candidate spans" in sec.text[1]
    assert len(sec.table["rows"]) == len(m)
    bounds = store.boundaries
    for row, (s, e), d in zip(sec.table["rows"], m.spans(), m.document, strict=True):
        assert row[1] == store.doc_ids[d] and int(row[2]) == s - bounds[d]
        assert int(row[3]) == e - s
        ctx = row[-1]
        shown = {" ": "\u2423", "\n": "\u23ce"}
        assert ctx["span"] == "".join(shown.get(t, t) for t in store.tokens(s, e))
        assert ctx["before"] == "".join(
            shown.get(t, t) for t in store.tokens(max(bounds[d], s - 5), s)
        )
    # the ranking is the store's own (independent of the section)
    again = search.match(store.states(NAME), cells, thr, (1, 0), top_k=10, boundaries=bounds)
    assert [r[2] for r in sec.table["rows"]] == [
        str(s - bounds[d]) for s, d in zip(again.start, again.document, strict=True)
    ]
    share = store.match_meta(m)["in_string"]["mean"]
    assert f"in_string {share:.3g}" in sec.text[2]
    hist = sec.figures[0]
    assert list(hist.data[0].y) == [c for c in m.fuzzy_histogram if c]


def test_report_with_matches_is_escaped_and_self_contained(store, matches, tmp_path):
    m, cells, thr, _brush, doc = matches
    sec = matches_section(m, store, name=NAME, threshold=thr)
    page = report([sec], tmp_path / "m.html", title="<i>cells</i>").path.read_text()
    assert "<script>alert" not in page and "<img src=x" not in page
    assert "&lt;i&gt;cells&lt;/i&gt;" in page
    part = _section_html(page, "Selected cells and their matches")
    assert part.count("<mark>") == len(m)
    assert "doc0&lt;b&gt;" in part  # document ids are user data too
    assert "&lt;script&gt;" in part  # the hostile source shows as text in the context cells
    assert _links(page) == []  # no src / href at all: nothing to fetch
    # bare Matches (no store): global positions, no tokens
    bare = report(m, tmp_path / "bare.html").sections
    assert bare == ["Selected cells and their matches"]


def test_perturbation_section_against_a_direct_computation(bundle):
    ids, _ = bundle.encode(SOURCE)
    cells = [3, 17, 42, 200]
    plain = workbench.record(bundle.model, ids)
    edited = workbench.intervene(bundle.model, ids, edits={NAME: zero(cells, start=10)})
    plain.tokens = [list(SOURCE)]
    vocab = bundle.tokenizer.vocab
    sec = perturbation_section(plain, edited, name=NAME, labels=vocab, description="zeroed")
    # independent: softmax of the last step's logits, the original's top 5
    p0 = torch.softmax(plain.output[0][0, -1].double(), -1).numpy()
    p1 = torch.softmax(edited.output[0][0, -1].double(), -1).numpy()
    top = np.argsort(-p0, kind="stable")[:5]
    rows = sec.table["rows"]
    assert [r[0] for r in rows] == [vocab[i] for i in top]
    for r, i in zip(rows, top, strict=True):
        assert float(r[1]) == pytest.approx(p0[i], rel=1e-3)
        assert float(r[2]) == pytest.approx(p1[i], rel=1e-3)
    diff = (edited[NAME][0] - plain[NAME][0]).double().numpy()
    assert np.all(diff[:10] == 0)  # the edit starts at step 10: nothing moves before
    np.testing.assert_allclose(diff[10:, cells], -plain[NAME][0, 10:, cells].double().numpy())
    heat = sec.figures[1].data[0]
    shown_units = [int(u) for u in heat.y]
    peak = np.abs(diff).max(0)
    assert set(shown_units[:4]) <= set(np.argsort(-peak)[:8].tolist())
    np.testing.assert_allclose(np.asarray(heat.z), diff[:, shown_units].T, atol=1e-6)
    assert sec.text[0] == "zeroed" and f"{peak.max():.4g}" in sec.text[1]


def test_perturbation_of_the_input_with_different_lengths(bundle):
    text2 = SOURCE.replace("numbers", "<b>numbers</b>")
    a = workbench.record(bundle.model, bundle.encode(SOURCE)[0], names="rnn.1.*")
    b = workbench.record(bundle.model, bundle.encode(text2)[0], names="rnn.1.*")
    a.tokens = [list(SOURCE)]
    sec = perturbation_section(a, b, labels=bundle.tokenizer.vocab)
    assert "rnn.1.fwd.hidden" in sec.text[0]
    assert "The runs have" in sec.text[1]
    z = np.asarray(sec.figures[1].data[0].z, dtype=float)
    n = len(SOURCE)
    first = SOURCE.index("numbers")
    assert np.all(z[:, :first] == 0) and not np.all(z[:, first:] == 0)
    assert z.shape[1] == n
    with pytest.raises(ValueError, match="pick one of"):
        perturbation_section(a, b, name="rnn.0.fwd.cell")
    with pytest.raises(TypeError, match="Trace"):
        perturbation_section(a, {"x": 1})


def test_classifier_and_forecaster_outputs():
    from workbench.reports._analysis import prediction_rows

    labels, b, a, value = prediction_rows(np.array([2.0, 0.0, -1.0]), np.array([0.0, 1.0, 0.0]),
                                          ["neg", "neu", "pos"])  # fmt: skip
    assert value == "probability" and labels == ["neg", "neu", "pos"]
    np.testing.assert_allclose(b, np.exp([2, 0, -1]) / np.exp([2, 0, -1]).sum())
    labels, b, a, value = prediction_rows(np.array([0.25]), np.array([0.5]))
    assert value == "output" and b.tolist() == [0.25] and a.tolist() == [0.5]


def test_perturbation_report_is_deterministic_and_escaped(bundle, tmp_path):
    ids, _ = bundle.encode(EVIL)
    plain = workbench.record(bundle.model, ids, names="rnn.1.*")
    plain.tokens = [list(EVIL)]
    edited = workbench.intervene(bundle.model, ids, edits={NAME: zero([5, 6], start=3)})
    labels = bundle.tokenizer.vocab

    def write(path):
        sec = perturbation_section(plain, edited, name=NAME, labels=labels,
                                   description="<script>bad()</script> edit")  # fmt: skip
        return report([sec], path).path.read_bytes()

    one, two = write(tmp_path / "a.html"), write(tmp_path / "b.html")
    assert one == two
    page = one.decode()
    part = _section_html(page, "Perturbation results")
    assert "&lt;script&gt;bad()&lt;/script&gt; edit" in part
    assert "<script>bad()" not in page and "<script>alert" not in page
    figs = _figures(part)
    assert [f["data"][0]["type"] for f in figs] == ["bar", "heatmap"]
    ticks = figs[1]["layout"]["xaxis"]["ticktext"]
    assert "&lt;" in ticks and "<" not in "".join(ticks)
