"""The README's picture of the shipped models' memory curves (``assets/memory_curves.png``).

Connectivity over lag (input-gradient norm of the next-token log-probability, each curve
divided by its peak) of the shipped Python char LM and parens model on their test splits,
rendered by the system chromium through playwright::

    .venv/bin/python demos/memory_curves.py [--out assets/memory_curves.png]
"""

from __future__ import annotations

import argparse
import tempfile
from pathlib import Path

ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]


def curves(windows: int = 200):
    from workbench import data, memory
    from workbench.models.checkpoint import load

    out = {}
    for name, steps in (("python", 128), ("parens", 59)):
        bundle = load(name)
        docs = data.corpus(name, "test", max_tokens=300_000)
        w = memory.from_corpus(bundle, docs, windows, steps)
        out[f"{name} ({bundle.config['arch']['arch']})"] = memory.connectivity(bundle, w)[
            "gradient"
        ]
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--out", default="assets/memory_curves.png")
    parser.add_argument("--chromium", default="/usr/bin/chromium")
    args = parser.parse_args()
    from playwright.sync_api import sync_playwright

    from workbench.viz import memory_curves

    measured = curves()
    for label, c in measured.items():
        print(f"{label}: horizon {c.horizon(0.1)} steps, decay x{c.rate():.3f} per step")
    fig = memory_curves(measured, normalize=True, title="Connectivity over lag (shipped models)")
    fig.update_layout(width=900, height=420)
    with tempfile.TemporaryDirectory() as tmp:
        page_file = Path(tmp) / "fig.html"
        fig.write_html(page_file, include_plotlyjs=True, full_html=True)
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=args.chromium, args=ARGS)
            page = browser.new_page(viewport={"width": 920, "height": 440})
            page.goto(page_file.as_uri())
            page.wait_for_selector(".scatterlayer .trace")
            page.screenshot(path=args.out)
            browser.close()
    print(f"wrote {args.out}")


if __name__ == "__main__":
    main()
