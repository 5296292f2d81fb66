"""``workbench explain`` on a shipped model, through the real CLI."""

from __future__ import annotations

import pandas as pd
from typer.testing import CliRunner

from workbench.cli import app


def test_explain_command_prints_and_writes_csv(tmp_path):
    out = tmp_path / "attr.csv"
    text = "i love this phone but the battery is terrible"
    res = CliRunner().invoke(
        app,
        ["explain", "-m", "sentiment", "-i", text, "--methods", "ig,occlusion", "--csv", str(out)],
    )
    assert res.exit_code == 0, res.output
    assert "prediction:" in res.output and "integrated_gradients" in res.output
    frame = pd.read_csv(out, keep_default_na=False)
    assert set(frame.method) == {"integrated_gradients", "occlusion"}
    assert list(frame[frame.method == "occlusion"].token) == text.split()


def test_explain_command_rejects_unknown_method():
    res = CliRunner().invoke(app, ["explain", "-m", "sentiment", "-i", "hi", "--methods", "nope"])
    assert res.exit_code != 0
    assert "unknown method" in res.output
