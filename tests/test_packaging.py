"""The command line starts light, and a missing optional extra is one line naming it."""

from __future__ import annotations

import importlib
import json
import os
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from workbench import cli
from workbench._extras import DISTRIBUTION, EXTRAS

ROOT = Path(__file__).parents[1]
HEAVY = ("torch", "dash", "plotly", "captum", "pandas", "numpy", "zarr", "sklearn")


def _python(code: str, *args: str) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    env.pop("WORKBENCH_DEBUG", None)
    return subprocess.run(
        [sys.executable, "-c", code, *args], capture_output=True, text=True, env=env, timeout=300
    )


def test_help_imports_nothing_heavy():
    code = (
        "import sys, json, runpy\n"
        "sys.argv = ['workbench', *sys.argv[1:]]\n"
        "try:\n    runpy.run_module('workbench', run_name='__main__')\n"
        "except SystemExit:\n    pass\n"
        "print(json.dumps(sorted({m.split('.')[0] for m in sys.modules})), file=sys.stderr)\n"
    )
    for args in (["--help"], ["bench", "--help"], []):
        res = _python(code, *args)
        loaded = set(json.loads(res.stderr.strip().splitlines()[-1]))
        assert not loaded & set(HEAVY), (args, sorted(loaded & set(HEAVY)))
        assert "convert" in res.stdout and "serve" in res.stdout or args == ["bench", "--help"]


@pytest.mark.parametrize("command", cli.COMMANDS, ids=lambda c: f"{c.group}-{c.name}")
def test_listed_help_is_the_docstring(command):
    func = getattr(importlib.import_module(command.module), command.function)
    first = " ".join(func.__doc__.strip().split("\n\n")[0].split())
    assert command.help == first


def test_every_command_loads_and_shows_its_help():
    from typer.testing import CliRunner

    for command in cli.COMMANDS:
        args = [command.name] if command.group == "app" else ["bench", command.name]
        res = CliRunner().invoke(cli.app, [*args, "--help"])
        assert res.exit_code == 0, (command, res.output)
        assert "Usage" in res.output


def test_python_dash_m_runs_the_same_cli():
    res = subprocess.run(
        [sys.executable, "-m", "workbench", "--help"],
        capture_output=True,
        text=True,
        env={**os.environ, "PYTHONPATH": str(ROOT)},
        timeout=300,
    )
    assert res.returncode == 0 and "serve" in res.stdout


_BLOCK = """
import sys, importlib.abc
class Block(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] == {module!r}:
            raise ModuleNotFoundError(f"No module named {{name!r}}", name=name)
        return None
sys.meta_path.insert(0, Block())
for key in [m for m in sys.modules if m.split('.')[0] == {module!r}]:
    del sys.modules[key]
"""


def _without(module: str, code: str, *args: str) -> subprocess.CompletedProcess:
    return _python(_BLOCK.format(module=module) + code, *args)


def _one_line(res: subprocess.CompletedProcess, extra: str) -> str:
    lines = [line for line in res.stderr.strip().splitlines() if line.strip()]
    assert res.returncode != 0
    assert "Traceback" not in res.stderr, res.stderr
    assert len(lines) == 1, res.stderr
    assert f"pip install '{DISTRIBUTION}[{extra}]'" in lines[0]
    return lines[0]


_RUN_CLI = "from workbench.cli import main\nsys.argv = ['workbench', *sys.argv[1:]]\nmain()\n"


def test_serve_without_the_app_extra_names_it():
    line = _one_line(_without("dash", _RUN_CLI, "serve", "--help"), "app")
    assert "dash" in line and line.startswith("error: ")


def test_python_api_without_an_extra_raises_one_clear_error():
    code = (
        "from workbench._extras import MissingExtraError\n"
        "try:\n    import workbench.widgets\n"
        "except MissingExtraError as exc:\n    print(exc, file=sys.stderr); sys.exit(3)\n"
    )
    res = _without("anywidget", code)
    assert res.returncode == 3
    _one_line(res, "widgets")


def test_methods_of_an_extra_name_it(tmp_path):
    # shap and lime are imported when a method runs; umap when a projection is fitted.
    code = (
        "import torch, workbench\n"
        "from workbench._extras import MissingExtraError\n"
        "torch.manual_seed(0)\n"
        "model = torch.nn.Sequential(torch.nn.Embedding(9, 4), torch.nn.Flatten(),"
        " torch.nn.Linear(12, 2))\n"
        "try:\n"
        "    workbench.explain(model, torch.tensor([[1, 2, 3]]), 0, method=sys.argv[1],"
        " embedding='0')\n"
        "except MissingExtraError as exc:\n    print(exc, file=sys.stderr); sys.exit(3)\n"
    )
    for module, extra in (("shap", "shap"), ("lime", "lime")):
        res = _without(module, code, extra)
        assert res.returncode == 3, res.stderr[-2000:]
        _one_line(res, extra)


def test_umap_without_its_extra_names_it():
    code = (
        "from workbench._extras import MissingExtraError\n"
        "from workbench.store.projection import _import_umap\n"
        "try:\n    _import_umap()\n"
        "except MissingExtraError as exc:\n    print(exc, file=sys.stderr); sys.exit(3)\n"
    )
    res = _without("umap", code)
    assert res.returncode == 3, res.stderr[-2000:]
    _one_line(res, "umap")


def test_extras_in_pyproject_match_the_runtime_table():
    project = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
    assert project["name"] == DISTRIBUTION
    assert isinstance(project["license"], str)
    extras = project["optional-dependencies"]
    assert set(EXTRAS) <= set(extras)
    assert extras["all"] == [f"{DISTRIBUTION}[{','.join(EXTRAS)}]"]
    core = " ".join(project["dependencies"])
    for extra in EXTRAS:
        assert not any(dep.split(">")[0].split("[")[0] in core for dep in extras[extra]), extra
    assert project["scripts"] == {"workbench": "workbench.cli:main"}
