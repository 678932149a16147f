"""The wheel holds every package and data file the code needs."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_every_subpackage_is_listed() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text("utf-8"))["tool"]["setuptools"]
    listed = set(config["packages"])
    found = {".".join(p.parent.relative_to(ROOT).parts)
             for p in (ROOT / "fishpredict").rglob("__init__.py")}
    assert found <= listed
    assert config["package-dir"]["fishpredict_backends"] == "backends"
    assert (ROOT / "backends" / "__init__.py").exists()


def test_package_data_exists() -> None:
    for name in ("py.typed", "openapi.json", "data/fish.csv"):
        assert (ROOT / "fishpredict" / name).exists(), name
    assert list((ROOT / "fishpredict" / "templates").glob("*.template"))
