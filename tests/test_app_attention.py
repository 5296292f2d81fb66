"""The Attention page: bad input refused with one line each, and the page in real Chromium."""

import pytest
import torch
from browser import TIMEOUT, chromium, needs_chromium, served

from workbench.app import AppContext, create_app
from workbench.app import _attention_logic as alogic
from workbench.models.checkpoint import load, save
from workbench.models.seq2seq import G2P, SPECIALS
from workbench.models.tokenizer import Tokenizer

PHONES = [*SPECIALS, "AH", "B", "K", "T"]


@pytest.fixture(scope="module")
def ckpt(tmp_path_factory):
    root = tmp_path_factory.mktemp("g2p")
    tok = Tokenizer.fit([list("abcdefghijklmnopqrstuvwxyz'")], "char")
    arch = dict(src_vocab=len(tok), tgt_vocab=len(PHONES), embed=6, hidden=5, dec_hidden=8,
                attn=4, max_steps=8)  # fmt: skip
    torch.manual_seed(0)
    save(root / "g2p", G2P(**arch).eval(), "g2p", "g2p", arch, tok, phonemes=PHONES)
    return root


def test_analyse_decodes_and_bounds(ckpt):
    bundle = load(ckpt / "g2p")
    r = alogic.analyse(bundle, "  Cat ", beam=3, topk=2)
    assert r["word"] == "cat" and r["chars"] == ["c", "a", "t"]
    assert len(r["attention"]) == len(r["phonemes"]) == len(r["topk"])
    for row in r["attention"]:
        assert sum(row) == pytest.approx(1.0, abs=1e-5) and len(row) == 3
    assert all(len(s) == 2 for s in r["topk"])
    assert 1 <= len(r["beam"]) <= 3
    scores = [lp for _, lp, _ in r["beam"]]
    assert scores == sorted(scores, reverse=True)
    from workbench.viz import beam_tree

    fig = beam_tree(r["beam_nodes"], r["labels"])
    markers = fig.data[1]
    assert len(markers.x) == len(r["beam_nodes"]) + 1  # and the <s> root
    finished = [n["finished"] for n in r["beam_nodes"]]
    assert list(markers.marker.symbol[1:]) == ["square" if f else "circle" for f in finished]
    assert max(markers.y) < 3  # at most beam = 3 kept per step


@pytest.mark.parametrize(
    ("word", "beam", "match"),
    [
        ("", 4, "type a word"),
        ("   ", 4, "type a word"),
        (None, 4, "type a word"),
        ("caf\u00e9", 4, "not in the model's alphabet"),
        ("a1b2", 4, "'1' '2' are not in the model's alphabet"),
        ("a" * 25, 4, "25 characters; the model reads at most 24"),
        ("cat", 0, "beam size 0 is out of range: choose 1 to 16"),
        ("cat", 10**9, "out of range"),
        ("cat", None, "beam size must be a whole number"),
        ("cat", 2.5, "beam size must be a whole number"),
        ("cat", "many", "beam size must be a whole number"),
    ],
)
def test_bad_input_is_one_clear_line(ckpt, word, beam, match):
    bundle = load(ckpt / "g2p")
    with pytest.raises(alogic.AttentionInputError, match=match) as info:
        alogic.analyse(bundle, word, beam=beam)
    assert "\n" not in str(info.value)


@pytest.fixture(scope="module")
def server(ckpt):
    ctx = AppContext(models={"g2p": ckpt / "g2p"}, cache=ckpt)
    with served(create_app(ctx)) as url:
        yield url


@needs_chromium
def test_attention_page_in_chromium(server):
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server}/attention?model=g2p&word=cab", timeout=TIMEOUT)
        page.wait_for_selector("#attention-greedy", timeout=TIMEOUT)
        page.wait_for_selector("#attention-matrix .heatmaplayer", timeout=TIMEOUT)
        page.wait_for_selector("#attention-beam-hypotheses tbody tr", timeout=TIMEOUT)
        page.wait_for_selector("#attention-beam-tree .scatterlayer .point", timeout=TIMEOUT)
        assert page.locator("#attention-topk-table tbody tr").count() >= 1
        box = page.locator("#attention-word")
        box.fill("x9")
        box.press("Enter")
        page.wait_for_selector(
            "#attention-message .wb-error:has-text(\"'9' is not in the model's alphabet\")",
            timeout=TIMEOUT,
        )
        box.fill("bat")
        page.fill("#attention-beam", "0")
        page.click("#attention-run")
        page.wait_for_selector(
            "#attention-message .wb-error:has-text('beam size 0 is out of range')",
            timeout=TIMEOUT,
        )
        page.fill("#attention-beam", "2")
        page.click("#attention-run")
        page.wait_for_selector("#attention-beam-hypotheses", timeout=TIMEOUT)
        page.wait_for_function(
            "() => !document.querySelector('#attention-message .wb-error')", timeout=TIMEOUT
        )


def test_what_if_forces_a_step_and_re_decodes_greedily(ckpt):
    from workbench.models.seq2seq import BOS, EOS

    bundle = load(ckpt / "g2p")
    plain = alogic.what_if(bundle, "cab")
    assert plain["forced"] is None and plain["phonemes"] == plain["original"]
    assert plain["phonemes"] == alogic.analyse(bundle, "cab")["phonemes"]
    r = alogic.what_if(bundle, " Cab", 0, "k")
    assert r["forced"] == 0 and r["phonemes"][0] == "K" and r["original"] == plain["phonemes"]
    assert len(r["attention"]) == len(r["phonemes"]) and len(r["attention"][0]) == 3
    # reference: feed K at step 0, then the argmax of every step, from the model's step()
    model, ids = bundle.model, [PHONES.index("K")]
    src = torch.tensor([bundle.tokenizer.encode(list("cab"))])
    with torch.no_grad():
        enc = model.encode(src, torch.tensor([3]))
        _, state, _ = model.step(torch.tensor([BOS]), enc.state, enc)
        while ids[-1] != EOS and len(ids) < model.max_steps:
            logits, state, _ = model.step(torch.tensor([ids[-1]]), state, enc)
            ids.append(int(logits.argmax(-1)))
    assert r["phonemes"] == [PHONES[i] for i in ids]
    end = alogic.what_if(bundle, "cab", 0, "</s>")
    assert end["phonemes"] == ["</s>"]


@pytest.mark.parametrize(
    ("step", "phoneme", "match"),
    [
        (0, None, "give both the step and the phoneme"),
        (None, "AH", "give both the step and the phoneme"),
        (99, "AH", "step 99 is out of range: choose 0 to"),
        (-1, "AH", "step -1 is out of range"),
        (1.5, "AH", "step must be a whole number"),
        (0, "XX", "'XX' is not one of the model's phonemes"),
        (0, "<pad>", "is not one of the model's phonemes"),
    ],
)
def test_what_if_bad_input_is_one_clear_line(ckpt, step, phoneme, match):
    bundle = load(ckpt / "g2p")
    with pytest.raises(alogic.AttentionInputError, match=match) as info:
        alogic.what_if(bundle, "cab", step, phoneme)
    assert "\n" not in str(info.value)
    with pytest.raises(alogic.AttentionInputError, match="type a word"):
        alogic.what_if(bundle, "", 0, "AH")


@needs_chromium
def test_what_if_in_chromium(ckpt, server):
    bundle = load(ckpt / "g2p")
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server}/attention?model=g2p&word=cab", timeout=TIMEOUT)
        page.wait_for_selector("#attention-greedy", timeout=TIMEOUT)
        page.fill("#attention-whatif-word", "tab")
        page.fill("#attention-force-step", "0")
        page.fill("#attention-force-phoneme", "b")
        page.click("#attention-whatif-run")
        want = alogic.what_if(bundle, "tab", 0, "B")
        page.wait_for_selector(
            f'#attention-whatif-output:text-is("{" ".join(want["phonemes"])}")', timeout=TIMEOUT
        )
        page.wait_for_selector("#attention-whatif-matrix .heatmaplayer", timeout=TIMEOUT)
        ticks = page.locator("#attention-whatif-matrix .ytick text").all_text_contents()
        assert "B*" in ticks
        page.fill("#attention-force-phoneme", "zz")
        page.click("#attention-whatif-run")
        page.wait_for_selector(
            "#attention-whatif-error .wb-error:has-text(\"'zz' is not one of the model's\")",
            timeout=TIMEOUT,
        )
        page.fill("#attention-force-step", "")
        page.fill("#attention-force-phoneme", "")
        page.click("#attention-whatif-run")
        plain = " ".join(alogic.what_if(bundle, "tab")["phonemes"])
        page.wait_for_selector(f'#attention-whatif-output:text-is("{plain}")', timeout=TIMEOUT)


METHODS = ["integrated_gradients", "occlusion", "lrp"]


def _texts(component) -> list[str]:
    """Every string inside a Dash component tree, depth first."""
    if isinstance(component, str):
        return [component]
    children = getattr(component, "children", None)
    if children is None:
        return []
    if not isinstance(children, (list, tuple)):
        children = [children]
    return [t for c in children for t in _texts(c)]


def _find(component, cid):
    if getattr(component, "id", None) == cid:
        return component
    children = getattr(component, "children", None)
    if not isinstance(children, (list, tuple)):
        children = [] if children is None else [children]
    for c in children:
        found = _find(c, cid)
        if found is not None:
            return found
    return None


def test_explain_output_token_equals_explain_on_the_output_step(ckpt):
    from workbench.app.pages.attention import explain_view
    from workbench.explainers import OutputStep, explain

    bundle = load(ckpt / "g2p")
    greedy = alogic.what_if(bundle, "cab")["phonemes"]
    step = min(1, len(greedy) - 1)
    r = alogic.explain_output(bundle, " Cab", step, METHODS, n_steps=16)
    assert r["phonemes"] == greedy and r["phoneme"] == greedy[step] and r["step"] == step
    ids = [PHONES.index(p) for p in greedy]
    src = torch.tensor([bundle.tokenizer.encode(list("cab"))])
    args = (torch.tensor([3]), torch.tensor([ids]))
    with torch.no_grad():
        logits = bundle.model(src, *args)
    for m in METHODS:
        kw = {"n_steps": 16} if m == "integrated_gradients" else {}
        want = explain(bundle.model, src, OutputStep(step, ids[step]), m, forward_args=args,
                       embedding="src_embed", **kw)  # fmt: skip
        got = r["explanations"][m]
        torch.testing.assert_close(got.attributions, want.attributions)
        # the explained score is the greedy phoneme's logit at that step (its argmax)
        assert int(logits[0, step].argmax()) == ids[step]
        assert float(got.output[0]) == pytest.approx(float(logits[0, step, ids[step]]), abs=1e-5)
    # the page: one row per method, raw relevance in the hover, one check line per method
    ctx = AppContext(models={"g2p": ckpt / "g2p"}, cache=ckpt)
    view = explain_view(ctx, "g2p", "cab", step, METHODS, 16)
    fig = _find(view, "attention-explain-matrix").figure
    heat = fig.data[0]
    assert list(fig.layout.yaxis.ticktext) == METHODS
    assert list(fig.layout.xaxis.ticktext) == ["c", "a", "b"]
    for row, m in zip(heat.customdata, METHODS, strict=True):
        want = r["explanations"][m].attributions[0].double().numpy()
        assert list(row) == pytest.approx(list(want), rel=1e-6, abs=1e-9)
    assert abs(heat.z).max() == pytest.approx(1.0)
    text = " ".join(_texts(_find(view, "attention-explain-checks")))
    assert "completeness delta" in text and "conservation: output" in text
    # LRP's conservation line: output = source relevance + initial state + fed phonemes + delta
    e = r["explanations"]["lrp"]
    fed = sum(float(v.double().sum()) for v in e.extras["token_relevance"].values())
    isr = float(e.extras["initial_state_relevance"][0])
    total = float(e.attributions[0].double().sum()) + isr + fed + float(e.delta[0])
    assert total == pytest.approx(float(e.output[0]), abs=1e-6)


@pytest.mark.parametrize(
    ("step", "methods", "n_steps", "match"),
    [
        (99, METHODS, 16, "step 99 is out of range: choose 0 to"),
        (-1, METHODS, 16, "step -1 is out of range"),
        (None, METHODS, 16, "step must be a whole number"),
        (0.5, METHODS, 16, "step must be a whole number"),
        (0, [], 16, "choose at least one method"),
        (0, ["shap_magic"], 16, "unknown method 'shap_magic'"),
        (0, METHODS, 0, "integrated gradients steps 0 is out of range: choose 1 to 256"),
        (0, METHODS, 10**6, "out of range"),
    ],
)
def test_explain_output_bad_input_is_one_clear_line(ckpt, step, methods, n_steps, match):
    bundle = load(ckpt / "g2p")
    with pytest.raises(alogic.AttentionInputError, match=match) as info:
        alogic.explain_output(bundle, "cab", step, methods, n_steps)
    assert "\n" not in str(info.value)


@needs_chromium
def test_explain_output_token_in_chromium(ckpt, server):
    bundle = load(ckpt / "g2p")
    want = alogic.explain_output(bundle, "cab", 0, ["occlusion", "lrp"], 8)
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server}/attention?model=g2p&word=cab", timeout=TIMEOUT)
        page.wait_for_selector("#attention-greedy", timeout=TIMEOUT)
        page.fill("#attention-explain-step", "0")
        page.uncheck("#attention-explain-methods input[value='integrated_gradients']")
        page.fill("#attention-explain-igsteps", "8")
        page.click("#attention-explain-run")
        page.wait_for_selector(
            f'#attention-explain-phoneme:text-is("{want["phoneme"]}")', timeout=TIMEOUT
        )
        page.wait_for_selector("#attention-explain-matrix .heatmaplayer", timeout=TIMEOUT)
        ticks = page.locator("#attention-explain-matrix .ytick text").all_text_contents()
        assert ticks == ["occlusion", "lrp"]
        page.wait_for_selector(
            "#attention-explain-check-lrp:has-text('conservation: output')", timeout=TIMEOUT
        )
        page.fill("#attention-explain-step", "99")
        page.click("#attention-explain-run")
        page.wait_for_selector(
            "#attention-explain-error .wb-error:has-text('step 99 is out of range')",
            timeout=TIMEOUT,
        )


@pytest.fixture(scope="module")
def sentiment():
    from workbench.models.checkpoint import shipped

    return load(shipped("sentiment"))


def test_pooling_weights_equal_the_pooling_equations(ckpt, sentiment):
    import copy

    from workbench.app.pages.attention import pool_view

    text = "a wonderful, moving film with a weak ending"
    r = alogic.pool_attention(sentiment, "  " + text)
    tokens = sentiment.tokenizer.tokenize(text)
    assert r["tokens"] == tokens and len(r["weights"]) == 1 and len(r["weights"][0]) == len(tokens)
    # float64 reference: embedding -> (bi)LSTM -> softmax(score(tanh(proj(h)))) -> head
    m = copy.deepcopy(sentiment.model).double().eval()
    ids = torch.tensor([sentiment.tokenizer.encode(tokens)])
    with torch.no_grad():
        h, _ = m.rnn(m.embed(ids))
        alpha = torch.softmax(m.pool.score(torch.tanh(m.pool.proj(h))).squeeze(-1), -1)
        logits = m.head((alpha[..., None] * h).sum(1))[0]
    assert r["weights"][0] == pytest.approx(alpha[0].tolist(), abs=1e-5)
    assert sum(r["weights"][0]) == pytest.approx(1.0, abs=1e-6)
    assert r["label"] == sentiment.labels[int(logits.argmax())]
    assert list(r["probs"].values()) == pytest.approx(torch.softmax(logits, -1).tolist(), abs=1e-5)
    ctx = AppContext(models={"g2p": ckpt / "g2p"}, cache=ckpt)
    view = pool_view(ctx, "sentiment", text)
    fig = _find(view, "attention-pool-matrix").figure
    assert list(fig.data[0].z[0]) == pytest.approx(r["weights"][0])
    assert list(fig.layout.xaxis.ticktext) == tokens
    assert _find(view, "attention-pool-label").children == r["label"]


@pytest.mark.parametrize(
    ("text", "match"),
    [("", "type a text"), ("   ", "type a text"), (None, "type a text"),
     ("good " * 201, "201 tokens; the view reads at most 200"),
     ("x" * 5000, "5000 characters; the view reads at most 4000")],
)  # fmt: skip
def test_pooling_bad_input_is_one_clear_line(sentiment, text, match):
    with pytest.raises(alogic.AttentionInputError, match=match) as info:
        alogic.pool_attention(sentiment, text)
    assert "\n" not in str(info.value)


def test_pooling_layout_only_on_request(ckpt):
    from workbench.app.pages.attention import layout

    ctx = AppContext(models={"g2p": ckpt / "g2p"}, cache=ckpt)
    assert _find(layout(ctx, model="sentiment"), "attention-pool-text") is not None
    default = layout(ctx)
    assert _find(default, "attention-pool-text") is None
    assert _find(default, "attention-word") is not None
    assert _find(default, "attention-pool-link").href == "/attention?model=sentiment"


@needs_chromium
def test_pooling_view_in_chromium(server, sentiment):
    want = alogic.pool_attention(sentiment, "what a dull film")
    with chromium() as browser:
        page = browser.new_page()
        page.goto(f"{server}/attention?model=sentiment", timeout=TIMEOUT)
        page.wait_for_selector("#attention-pool-matrix .heatmaplayer", timeout=TIMEOUT)
        box = page.locator("#attention-pool-text")
        box.fill("what a dull film")
        box.press("Enter")
        page.wait_for_function(
            "() => [...document.querySelectorAll('#attention-pool-matrix .xtick text')]"
            ".map(t => t.textContent).join(' ') === 'what a dull film'",
            timeout=TIMEOUT,
        )
        page.wait_for_selector(f'#attention-pool-label:text-is("{want["label"]}")', timeout=TIMEOUT)
        box.fill("   ")
        box.press("Enter")
        page.wait_for_selector("#attention-pool-error .wb-error:has-text('type a text')",
                               timeout=TIMEOUT)  # fmt: skip
