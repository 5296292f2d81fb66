"""The public surface: ``workbench.explain``/``workbench.report`` are plain functions whatever
was imported first, their packages are ``workbench.explainers``/``workbench.reports``, the old
package paths fail with one line naming the new one, and every ``:::`` in docs/ resolves."""

from __future__ import annotations

import importlib
import inspect
import re
import subprocess
import sys
import types
from pathlib import Path

import pytest

import workbench

ROOT = Path(__file__).resolve().parents[1]


def test_every_public_name_resolves_to_a_non_module():
    for name in workbench.__all__:
        value = getattr(workbench, name)
        assert not isinstance(value, types.ModuleType), name
    assert inspect.isfunction(workbench.explain) and inspect.isfunction(workbench.report)
    assert set(dir(workbench)) == set(workbench.__all__)


def test_the_packages_export_what_the_docs_name():
    import workbench.explainers as ex
    import workbench.reports as rp

    for name in ex.__all__:
        assert getattr(ex, name) is not None, name
    assert {"Method", "register", "registry", "METHODS", "explain"} <= set(ex.__all__)
    assert {"report", "matches_section", "perturbation_section"} <= set(rp.__all__)
    assert importlib.import_module("workbench.explainers.metrics").perturbation_curve
    assert importlib.import_module("workbench.explainers.checks").hit_rates


def test_functions_stay_functions_after_the_packages_are_imported():
    # a fresh interpreter, packages first: the old design swapped a module's class for this
    code = (
        "import workbench.explainers as ex, workbench.explainers.metrics, workbench.reports as rp\n"
        "import inspect, workbench\n"
        "from workbench import explain, report\n"
        "assert explain is ex.explain is workbench.explain, workbench.explain\n"
        "assert report is rp.report is workbench.report, workbench.report\n"
        "assert inspect.isfunction(explain) and inspect.isfunction(report)\n"
        "assert workbench.explainers is ex and workbench.reports is rp\n"
        "assert not callable(ex) and not callable(rp)\n"
        "print('ok')\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, timeout=300, check=False
    )
    assert out.returncode == 0 and out.stdout.strip() == "ok", out.stderr[-2000:]


@pytest.mark.parametrize(
    ("statement", "new"),
    [
        ("import workbench.explain", "workbench.explainers"),
        ("import workbench.explain.metrics", "workbench.explainers"),
        ("from workbench.explain import Target", "workbench.explainers"),
        ("from workbench.report import matches_section", "workbench.reports"),
        ("import workbench.report._builder", "workbench.reports"),
    ],
)
def test_old_package_paths_fail_with_one_line_naming_the_new_one(statement, new):
    with pytest.raises(ModuleNotFoundError) as err:
        exec(statement, {})
    message = str(err.value)
    assert "\n" not in message and f"import {new} instead" in message
    assert inspect.isfunction(workbench.explain)  # the failed import left the function alone


def test_other_missing_modules_keep_the_usual_error():
    with pytest.raises(ModuleNotFoundError, match="No module named 'workbench.explainerz'"):
        importlib.import_module("workbench.explainerz")
    with pytest.raises(ModuleNotFoundError, match="No module named 'workbench.reporting'"):
        importlib.import_module("workbench.reporting")


def _directives() -> list[str]:
    found = []
    for page in sorted((ROOT / "docs").glob("*.md")):
        found += re.findall(r"^::: ([\w.]+)", page.read_text("utf-8"), flags=re.M)
    return found


def test_docs_api_directives_resolve():
    # what mkdocstrings renders: each path must import as module + attribute chain
    paths = _directives()
    assert "workbench.explainers.explain" in paths and "workbench.reports._builder.report" in paths
    for path in paths:
        parts = path.split(".")
        for cut in range(len(parts), 0, -1):
            try:
                obj = importlib.import_module(".".join(parts[:cut]))
            except ModuleNotFoundError:
                continue
            for attr in parts[cut:]:
                obj = getattr(obj, attr)
            break
        else:
            pytest.fail(f"{path} does not import")


@pytest.mark.parametrize(
    "package", ["workbench", "workbench.recorder", "workbench.memory", "workbench.compare"]
)
def test_lazy_packages_share_one_loader(package):
    mod = importlib.import_module(package)
    assert mod.__getattr__.__module__ == "workbench._lazy"
    for name in mod.__all__:
        if name != "__version__":
            assert getattr(mod, name) is getattr(mod, name), name
    assert set(mod.__all__) <= set(dir(mod))
    with pytest.raises(AttributeError, match=f"module '{package}' has no attribute 'nope'"):
        mod.nope  # noqa: B018
