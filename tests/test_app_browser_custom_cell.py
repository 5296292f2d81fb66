"""A custom cell recorded through HookPoints that declare their layer, browsed in the app.

The peephole demo cell (``--arch peephole``) names its gates like a fused ``nn.LSTM``'s
(``rnn.cells.0.fwd.forget_gate``), so the States, Gates and Projection pages show it. The
store is real (built on disk from the parenthesis corpus), the browser real Chromium.
"""

import pytest
from browser import TIMEOUT, needs_chromium, playwright_api, served

from workbench.app import AppContext, create_app
from workbench.app import _states_logic as logic
from workbench.models.architectures import build
from workbench.models.checkpoint import load, save, shipped

playwright = playwright_api()
pytestmark = needs_chromium

NAMES = [
    f"rnn.cells.{k}.fwd.{q}"
    for k in range(2)
    for q in ("input_gate", "forget_gate", "cell_input", "output_gate", "cell", "hidden")
]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    root = tmp_path_factory.mktemp("peephole")
    parens = load(shipped("parens"))
    arch = dict(vocab=len(parens.tokenizer), embed=8, hidden=16, layers=2, arch="peephole")
    model = build("charlm", **arch).eval()
    save(root / "peephole", model, "charlm", "parens", arch, parens.tokenizer,
         data={"corpus": "parens"})  # fmt: skip
    ctx = AppContext(
        models={"peephole": root / "peephole"}, corpus_tokens={"peephole": 600}, cache=root
    )
    ctx.prepare(progress=False)
    with served(create_app(ctx)) as url:
        yield url, ctx


def test_the_store_holds_the_cell_in_the_name_grammar(server):
    _, ctx = server
    store = ctx.store("peephole")
    assert store.names == NAMES
    groups = logic.layer_names(store.names)
    assert list(groups) == ["rnn.cells.0", "rnn.cells.1"]
    assert logic.default_names(store.names) == ["rnn.cells.1.fwd.hidden"]


@pytest.mark.parametrize(
    ("path", "plot"),
    [
        ("/states?model=peephole", "#states-graph-box-0"),
        ("/gates?model=peephole", "#gates-saturation"),
        ("/gates?model=peephole", "#gates-heatmap"),
        ("/projection?model=peephole&method=pca&sample=500", "#projection-map"),
    ],
)
def test_custom_cell_pages_show_plots(server, browser, path, plot):
    url, _ = server
    context = browser.new_context(viewport={"width": 1400, "height": 900})
    page = context.new_page()
    page.set_default_timeout(TIMEOUT)
    errors = []
    page.on("console", lambda m: errors.append(m.text) if m.type == "error" else None)
    page.on("pageerror", lambda e: errors.append(str(e)))
    page.goto(url + path)
    page.wait_for_function(
        """(sel) => { const g = document.querySelector(sel + ' .js-plotly-plot');
        return g && g._fullData && g._fullData.some(t => t._length || (t.z && t.z.length)); }""",
        arg=plot,
    )
    text = page.locator("body").inner_text()
    assert "rnn.cells.1.fwd" in text or "rnn.cells.1" in text
    if "gates" in path:
        assert "forget_gate" in text
    page.wait_for_timeout(300)
    assert errors == []
    context.close()
