"""The house in layers (docs/architecture.md): what the layout promises, checked.

import-linter's contracts (pyproject.toml, run by .ci/run as ``lint-imports``)
keep the import direction; these tests keep the promises it cannot see: the
runtime never loads the test harness or pytest, a model file's format code
starts without scikit-learn, and the package root stays small.
"""

from __future__ import annotations

import json
import pkgutil
import subprocess
import sys
from pathlib import Path

import fishpredict

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = Path(fishpredict.__file__).parent


def _run(code: str) -> str:
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          timeout=120, check=False)
    assert done.returncode == 0, done.stderr[-3000:]
    return done.stdout


def test_the_runtime_never_imports_pytest_or_the_test_harness() -> None:
    """Every module outside fishpredict.testing imports with neither pytest nor the
    harness loaded; ``import fishpredict.testing`` itself loads no pytest either."""
    modules = sorted(
        m.name for m in pkgutil.walk_packages([str(PACKAGE)], "fishpredict.")
        if not m.name.startswith("fishpredict.testing.") and m.name != "fishpredict.__main__"
    )
    assert "fishpredict.server.process" in modules and "fishpredict.soak.run" in modules
    code = (
        "import importlib, json, sys\n"
        f"for name in {modules!r}:\n"
        "    importlib.import_module(name)\n"
        "print(json.dumps(sorted(m for m in sys.modules if m.split('.')[0] in "
        "('pytest', '_pytest') or m.startswith('fishpredict.testing.'))))"
    )
    assert json.loads(_run(code).splitlines()[-1]) == []


def test_a_model_file_format_loads_without_scikit_learn() -> None:
    out = _run("import sys, fishpredict.models.formats\nprint('sklearn' in sys.modules)")
    assert out.split() == ["False"]


def test_at_most_twelve_modules_sit_in_the_package_root() -> None:
    modules = sorted(p.name for p in PACKAGE.glob("*.py"))
    assert len(modules) <= 12, modules


def test_every_package_has_a_layer() -> None:
    """The layers contract names every sub-package and root module, so nothing new
    escapes the import direction by not being listed."""
    import tomllib

    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))
    (layers,) = [c["layers"] for c in config["tool"]["importlinter"]["contracts"]
                 if c["type"] == "layers"]
    named = {part.strip() for layer in layers for part in layer.split("|")}
    present = {p.name for p in PACKAGE.iterdir() if (p / "__init__.py").exists()}
    present |= {p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__"}
    assert present == named, (sorted(present - named), sorted(named - present))
