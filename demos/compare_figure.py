"""The README's Compare figure: linear CKA of the shipped LSTM vs the GRU and the tanh RNN.

Run after ``workbench serve`` has built the demo stores (or ``make demo``):

    python demos/compare_figure.py   # writes assets/screenshots/compare-cka.png

It compares the first 100,000 common test-split steps of the stores and prints the CKA
matrices and SVCCA values.
"""

from pathlib import Path

import numpy as np

from workbench.app import AppContext
from workbench.compare import compare_stores
from workbench.viz import cka_heatmap

OUT = Path(__file__).resolve().parent.parent / "assets" / "screenshots" / "compare-cka.png"


def main() -> None:
    from plotly.subplots import make_subplots

    ctx = AppContext()
    lstm = ctx.store("python")
    fig = make_subplots(rows=1, cols=2, subplot_titles=["LSTM vs GRU", "LSTM vs tanh RNN"],
                        horizontal_spacing=0.2)  # fmt: skip
    for col, other in enumerate(("python-gru", "python-rnn"), start=1):
        res = compare_stores(lstm, ctx.store(other), steps=100_000)
        print(f"python vs {other}: {res.steps} steps, SVCCA {res.svcca.similarity:.3f}")
        print(np.array2string(res.cka, precision=2), res.names_a, res.names_b)
        print(res.cells.to_string())
        part = cka_heatmap(res.cka, res.names_a, res.names_b, "python (LSTM)", other)
        trace = part.data[0]
        trace.showscale = col == 2
        fig.add_trace(trace, row=1, col=col)
        fig.update_yaxes(autorange="reversed", row=1, col=col)
    fig.update_layout(template="plotly_white", height=380, width=900,
                      margin={"l": 130, "r": 20, "t": 40, "b": 90})  # fmt: skip
    html = OUT.with_suffix(".html")
    fig.write_html(html, include_plotlyjs=True)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path="/usr/bin/chromium", args=["--no-sandbox"])
        page = browser.new_page(viewport={"width": 900, "height": 380})
        page.goto(html.as_uri())
        page.wait_for_selector(".js-plotly-plot .heatmaplayer")
        page.screenshot(path=str(OUT))
        browser.close()
    html.unlink()
    print(f"wrote {OUT}")


if __name__ == "__main__":
    main()
