"""The shared options and types (fishpredict/cli/options.py)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner

from fishpredict.cli import cli
from fishpredict.cli.options import (
    Header,
    IntList,
    ModelPath,
    json_option,
    model_args,
    model_sources,
    write_json,
)
from fishpredict.fish.training import DEFAULT_KS
from fishpredict.models.store import Source


def convert(kind: click.ParamType, text: str) -> Any:
    return kind.convert(text, None, None)


def test_int_list() -> None:
    assert convert(IntList(), "1,5, 15,") == [1, 5, 15]
    with pytest.raises(click.BadParameter, match="comma-separated list of integers"):
        convert(IntList(), "1,x")
    with pytest.raises(click.BadParameter, match="positive integers"):
        convert(IntList(), "0")


def test_header() -> None:
    assert convert(Header(), "X-Test:  a: b ") == ("X-Test", "a: b")
    with pytest.raises(click.BadParameter, match="'Name: value'"):
        convert(Header(), "nocolon")


def test_model_path(tmp_path: Path) -> None:
    assert convert(ModelPath(), "rf=models/rf.joblib") == ("rf", "models/rf.joblib")
    assert convert(ModelPath(), "models/rf.joblib") == (None, "models/rf.joblib")
    assert convert(ModelPath(), "dir/a=b.joblib") == (None, "dir/a=b.joblib")
    odd = tmp_path / "a=b.joblib"
    odd.write_bytes(b"")
    assert convert(ModelPath(), str(odd)) == (None, str(odd))  # an existing path wins
    with pytest.raises(click.BadParameter, match="NAME=PATH"):
        convert(ModelPath(), "rf=")


def test_model_sources_and_args(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert model_sources(()) is None
    specs = [("rf", "rf.joblib"), (None, "models")]
    assert model_sources(specs) == [Source(Path("rf.joblib"), "rf"), Source(Path("models"))]
    monkeypatch.chdir(tmp_path)
    assert model_args(specs) == ["--models", f"rf={tmp_path / 'rf.joblib'}",
                                 "--models", str(tmp_path / "models")]


def test_k_default_is_artifacts_default_ks() -> None:
    result = CliRunner().invoke(cli, ["train", "--help"])
    assert result.exit_code == 0
    assert f"[default: {','.join(map(str, DEFAULT_KS))}]" in result.output


def test_json_option_takes_a_file_or_means_stdout(tmp_path: Path) -> None:
    @click.command()
    @json_option()
    def show(json_out: str | None) -> None:
        write_json(json_out, {"answer": 42})

    runner = CliRunner()
    assert runner.invoke(show, []).output == ""
    assert json.loads(runner.invoke(show, ["--json"]).output) == {"answer": 42}
    assert json.loads(runner.invoke(show, ["--json", "-"]).output) == {"answer": 42}
    out = tmp_path / "a.json"
    assert runner.invoke(show, ["--json", str(out)]).output == ""
    assert json.loads(out.read_text()) == {"answer": 42}
    failed = runner.invoke(show, ["--json", str(tmp_path / "no" / "a.json")])
    assert "cannot write" in str(failed.exception)


def test_backends_json_flag_still_prints_json() -> None:
    result = CliRunner().invoke(cli, ["backends", "--json"])
    assert result.exit_code == 0
    names = {b["name"] for b in json.loads(result.output)}
    assert {"socket", "starlette", "aiohttp"} <= names
