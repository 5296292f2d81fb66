"""The Attention page's views outside the app: the notebook widget and the report section
draw the same figures (workbench.viz) from the same decode as the page."""

from __future__ import annotations

import html

import numpy as np
import pytest
import torch

import workbench
from workbench.models.checkpoint import load, save
from workbench.models.g2p_decode import AttentionInputError, decode_word, what_if
from workbench.models.seq2seq import G2P, SPECIALS
from workbench.models.tokenizer import Tokenizer

PHONES = [*SPECIALS, "AH", "B", "K", "T"]


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    root = tmp_path_factory.mktemp("g2p_views")
    tok = Tokenizer.fit([list("abcdefghijklmnopqrstuvwxyz'")], "char")
    arch = dict(src_vocab=len(tok), tgt_vocab=len(PHONES), embed=6, hidden=5, dec_hidden=8,
                attn=4, max_steps=8)  # fmt: skip
    torch.manual_seed(0)
    save(root / "g2p", G2P(**arch).eval(), "g2p", "g2p", arch, tok, phonemes=PHONES)
    return load(root / "g2p")


def test_seq2seq_attention_figure(bundle):
    from workbench import viz

    r = what_if(bundle, "cab", 0, "T")
    fig = viz.seq2seq_attention(r["attention"], r["phonemes"], r["chars"], forced=r["forced"])
    (heat,) = fig.data
    np.testing.assert_allclose(np.asarray(heat.z), np.asarray(r["attention"]))
    np.testing.assert_allclose(np.asarray(heat.z).sum(1), 1.0, atol=1e-6)
    labels = list(fig.layout.yaxis.ticktext)
    assert labels[0] == "T*" and labels[1:] == [html.escape(p) for p in r["phonemes"][1:]]
    assert list(fig.layout.xaxis.ticktext) == ["c", "a", "b"]


def test_widget_shows_the_pages_attention_figure(bundle):
    pytest.importorskip("anywidget")
    from workbench import viz
    from workbench.widgets import FigureWidget, figure_state, show

    r = decode_word(bundle, "bat", beam=2)
    w = show(r)
    assert isinstance(w, FigureWidget)
    want = viz.seq2seq_attention(r["attention"], r["phonemes"], r["chars"], title="attention: bat")
    assert w.figure == figure_state(want)
    forced = what_if(bundle, "bat", 0, "K")
    assert "K*" in show(forced).figure["layout"]["yaxis"]["ticktext"]


def test_report_section_has_the_pages_views(bundle, tmp_path):
    from workbench import viz
    from workbench.reports import attention_section

    sec = attention_section(bundle, ["cab", "<b>"[1]], beam=3, topk=2)
    r = decode_word(bundle, "cab", 3, 2)
    assert [row[0] for row in sec.table["rows"]] == ["cab", "b"]
    assert sec.table["rows"][0][1] == " ".join(r["phonemes"][:-1])
    assert sec.table["rows"][0][3] == " ".join(r["beam"][0][0])
    assert len(sec.figures) == 4
    want = viz.seq2seq_attention(r["attention"], r["phonemes"], r["chars"], title="attention: cab")
    assert sec.figures[0].to_json() == want.to_json()
    tree = viz.beam_tree(r["beam_nodes"], r["labels"], title="beam search of cab, size 3")
    assert sec.figures[1].to_json() == tree.to_json()
    out = workbench.report([sec], tmp_path / "a.html")
    text = out.path.read_text(encoding="utf-8")
    assert "Attention" in out.sections and "beam search of cab" in text
    from workbench.reports._embed import script_json

    assert script_json("&lt;s&gt;")[1:-1] in text  # the beam tree's root label, escaped once
    assert "&amp;lt;s" not in text and script_json("&amp;lt;s")[1:-1] not in text
    with pytest.raises(AttentionInputError, match="not in the model's alphabet"):
        attention_section(bundle, ["ca<b"])
    with pytest.raises(AttentionInputError, match="1 to 20 words"):
        attention_section(bundle, ["a"] * 21)
    with pytest.raises(AttentionInputError, match="beam size 0 is out of range"):
        attention_section(bundle, ["a"], beam=0)
