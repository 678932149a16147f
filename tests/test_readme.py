"""The README's examples run, and the answers it shows are the real ones."""

from __future__ import annotations

import ast
import json
import re
import shlex
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from fishpredict.cli import cli, main
from fishpredict.server.process import ServerProcess, start_server

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text("utf-8"), re.S)


def test_opens_with_the_two_fresh_machine_commands() -> None:
    first, second = blocks("sh")[:2]
    assert first.strip() == (
        'python3 -m venv .venv && .venv/bin/pip install -e ".[all]" && .venv/bin/fishpredict serve'
    )
    assert second.strip() == "bash .ci/run"
    ci = (README.parent / ".ci" / "run").read_text("utf-8")
    # the same virtual environment, then the suite in it
    assert "python3 -m venv .venv" in ci and 'py=.venv/bin/python' in ci
    assert '"$py" -m pip install -q --disable-pip-version-check -e ".[test]"' in ci
    assert '"$py" -m pytest' in ci and "lint-imports" in ci


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The README's Python block runs as written, and every ``call  # 'answer'`` comment
    is what that call answers at that point of the block (the fish, then your own model)."""
    import joblib
    from sklearn.datasets import load_iris
    from sklearn.ensemble import RandomForestClassifier

    monkeypatch.chdir(tmp_path)
    assert main(["train", "--out", "models"]) == 0
    iris = load_iris(as_frame=True)
    joblib.dump(RandomForestClassifier(random_state=0).fit(
        iris.data, iris.target_names[iris.target]), "iris.joblib")
    code = blocks("python")[0]
    lines = code.splitlines()
    namespace: dict[str, object] = {}
    checked = 0
    for stmt in ast.parse(code).body:
        source = "\n".join(lines[stmt.lineno - 1:stmt.end_lineno])
        m = re.match(r"(p\.predict\w*\(.*\))\s+# (\[?'.+)$", source.strip())
        if m and isinstance(stmt, ast.Expr):
            assert repr(eval(m.group(1), namespace)) == m.group(2), source
            checked += 1
        else:
            exec(compile(ast.Module([stmt], []), "README.md", "exec"), namespace)
    assert checked >= 4


def test_every_command_in_the_table_exists() -> None:
    names = set(cli.list_commands(click.Context(cli)))
    table = re.findall(r"^\| `fishpredict (\w+)", README.read_text("utf-8"), re.M)
    assert table and set(table) <= names


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_server("socket") as srv:
        yield srv


def test_curl_examples_answer_what_the_readme_shows(server: ServerProcess) -> None:
    text = "\n".join(blocks("sh"))
    shown = re.findall(r"^(curl .*?(?:\\\n.*?)*)\n# (\{.*\})$", text, re.M)
    assert len(shown) >= 2
    for command, expected in shown:
        argv = shlex.split(command.replace("\\\n", " ").replace("127.0.0.1:8000",
                                                                f"127.0.0.1:{server.port}"))
        assert json.loads(curl(argv)) == json.loads(expected)


def curl(argv: list[str]) -> bytes:
    """Do what the README's ``curl`` line does (-X, -H, -d), with urllib."""
    assert argv[0] == "curl"
    method, headers, data, url = "GET", {}, None, ""
    args = iter(argv[1:])
    for arg in args:
        if arg == "-X":
            method = next(args)
        elif arg == "-H":
            name, _, value = next(args).partition(":")
            headers[name.strip()] = value.strip()
        elif arg == "-d":
            data = next(args).encode()
        else:
            url = arg
    req = urllib.request.Request(url, data=data, headers=headers, method=method)
    with urllib.request.urlopen(req, timeout=30) as resp:
        body: bytes = resp.read()
        return body
