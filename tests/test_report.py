"""workbench.reports: one self-contained, escaped, deterministic HTML file."""

import re
from html.parser import HTMLParser

import numpy as np
import pytest
from plotly.offline import get_plotlyjs
from report_fixtures import EVIL, explanations, small_trace

import workbench
from workbench import viz
from workbench.reports import ReportResult, report


class _Tags(HTMLParser):
    def __init__(self):
        super().__init__()
        self.tags, self.attrs = [], []

    def handle_starttag(self, tag, attrs):
        self.tags.append(tag)
        self.attrs += [(tag, k, v) for k, v in attrs]


def _parse(text: str) -> _Tags:
    p = _Tags()
    p.feed(text)
    return p


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    items = [
        {"title": "Model and data", "text": ["tokens " + " ".join(EVIL)],
         "table": {"<b>kind</b>": "classifier", "units": 8}},
        small_trace(),
        *explanations(),
        {"title": "Faithfulness", "curves": {"lrp": [1.0, 0.4, 0.2], "shap": [1.0, 0.8, 0.1]}},
        viz.trajectories(np.zeros((3, 2)), ["<s>", "b", "c"]),
    ]  # fmt: skip
    path = tmp_path_factory.mktemp("r") / "report.html"
    return items, report(items, path, title="<i>T</i>")


def test_result_reports_path_size_and_sections(built):
    _, res = built
    assert isinstance(res, ReportResult) and res.path.exists()
    assert res.size == res.path.stat().st_size > get_plotlyjs().__len__()
    assert res.sections == [
        "Model and data", "Recorded quantities", "States: rnn.1.fwd.hidden", "Gates",
        "Attention", "Prediction", "Attributions", "Agreement between methods",
        "Faithfulness", "Figure",
    ]  # fmt: skip
    assert callable(workbench.report)  # a plain function (tests/test_public_api.py)


def test_no_external_urls_and_plotly_once(built):
    text = built[1].path.read_text("utf-8")
    tags = _parse(text)
    links = [(t, k, v) for t, k, v in tags.attrs if k in ("src", "href")]
    assert all(not re.match(r"\s*(https?:)?//", v or "", re.I) for _, _, v in links), links
    assert text.count(get_plotlyjs()[:60]) == 1
    assert text.count("plotly.js v") == 1


def test_user_text_is_escaped(built):
    text = built[1].path.read_text("utf-8")
    tags = _parse(text)
    assert not {"textarea", "img", "i", "b"} & set(tags.tags)
    assert "<script>alert(1)" not in text and "</textarea>" not in text
    assert "<img src=x" not in text
    scripts = re.findall(r"<script([^>]*)>", text)
    # plotly.js, our JS, and one JSON block per figure / trajectory view (never executable)
    assert sum(1 for s in scripts if "application/json" not in s) == 2
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in text  # the table / text cell, as text


def test_same_inputs_same_bytes(built, tmp_path):
    items, first = built
    second = report(items, tmp_path / "again.html", title="<i>T</i>")
    assert second.path.read_bytes() == first.path.read_bytes()


def test_link_mode_writes_plotly_beside(tmp_path):
    res = report(explanations()[:1], tmp_path / "out" / "r.html", plotly="link")
    text = res.path.read_text("utf-8")
    assert res.plotly_path == tmp_path / "out" / "plotly.min.js" and res.plotly_path.exists()
    assert '<script src="plotly.min.js"></script>' in text
    assert "plotly.js v" not in text and res.size < 200_000


def test_bad_items_get_clear_errors(tmp_path):
    with pytest.raises(TypeError, match="cannot put a int"):
        report([1], tmp_path / "x.html")
    with pytest.raises(ValueError, match="nothing to report"):
        report([], tmp_path / "x.html")
    with pytest.raises(ValueError, match="title"):
        report([{"text": "no title"}], tmp_path / "x.html")
    with pytest.raises(ValueError, match="embed"):
        report([{"title": "t"}], tmp_path / "x.html", plotly="cdn")
    with pytest.raises(ValueError, match="was not recorded"):
        report(small_trace(), tmp_path / "x.html", quantity="rnn.9.fwd.hidden")


def test_cli_writes_a_report(tmp_path):
    from typer.testing import CliRunner

    from workbench.cli import app

    out = tmp_path / "r.html"
    args = ["report", "-m", "parens", "-i", "(()(()))", "--methods", "ig,lrp", "-o", str(out)]
    result = CliRunner().invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "wrote" in result.output and out.exists()
    text = out.read_text("utf-8")
    assert "Deletion curves" in text and "integrated_gradients" in text
    bad = CliRunner().invoke(app, ["report", "-m", "parens", "-i", "()", "--methods", "nope"])
    assert bad.exit_code != 0 and "unknown method" in bad.output
