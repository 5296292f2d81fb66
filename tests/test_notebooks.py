"""The demo notebooks run top to bottom (nbclient, the venv's ipykernel) so they never rot.

The committed ``.ipynb`` files keep no outputs; executed copies are never written back.
"""

import json
import sys
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat", reason="pip install -e '.[dev]' (nbformat)")
nbclient = pytest.importorskip("nbclient", reason="pip install -e '.[dev]' (nbclient)")

DEMOS = Path(__file__).resolve().parent.parent / "demos"
NOTEBOOKS = sorted(DEMOS.glob("*.ipynb"))
WIDGET = "application/vnd.jupyter.widget-view+json"


def test_the_four_demos_exist():
    assert [p.name for p in NOTEBOOKS] == [
        "01_tour_python_lm.ipynb",
        "02_sentiment_explanations.ipynb",
        "03_sunspots_over_time.ipynb",
        "04_attention_g2p.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_committed_notebook_is_stripped(path):
    book = nbformat.read(path, as_version=4)
    nbformat.validate(book)
    for cell in book.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [] and cell.execution_count is None, path.name
    assert "widgets" not in book.metadata


def _run(path: Path, tmp_path: Path):
    from jupyter_client.kernelspec import KernelSpecManager

    specs = KernelSpecManager().find_kernel_specs()
    if "python3" not in specs:
        pytest.skip("no python3 kernel: pip install ipykernel in this environment")
    book = nbformat.read(path, as_version=4)
    client = nbclient.NotebookClient(
        book, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(tmp_path)}}
    )
    client.execute()
    return book


def _text(book) -> str:
    parts = []
    for cell in book.cells:
        for out in cell.get("outputs", []):
            parts.append(out.get("text", ""))
            parts.append(json.dumps(out.get("data", {})))
    return "\n".join(parts)


def _widgets(book) -> int:
    return sum(WIDGET in out.get("data", {}) for c in book.cells for out in c.get("outputs", []))


@pytest.mark.slow
@pytest.mark.timeout(600)
@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_top_to_bottom(path, tmp_path):
    book = _run(path, tmp_path)
    errors = [o for c in book.cells for o in c.get("outputs", []) if o.output_type == "error"]
    assert errors == []
    text = _text(book)
    if not path.stem.startswith("04"):  # 04 shows plotly figures, no widget
        assert _widgets(book) >= 2, "the widgets did not display"
    assert "Traceback" not in text
    if path.stem.startswith("01"):
        assert "selected cells [" in text and "bits/char" in text and "tour.html" in text
        assert "in_literal against is_code: cell" in text and "held out" in text
    elif path.stem.startswith("02"):
        assert "mean AOPC" in text and "sentiment.html" in text
    elif path.stem.startswith("04"):
        assert "attention.weights" in text and "test_per" in text and "plotly" in text
    else:
        assert "RMSE" in text and "forecast with those units zeroed" in text
    assert sys.executable  # the kernel is this environment's (kernelspec argv "python")
