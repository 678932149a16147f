"""The README's examples run, and the answers it shows are the real ones."""

from __future__ import annotations

import json
import re
import shlex
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import click
import pytest

from fishpredict.cli import cli, main
from fishpredict.testing.server import ServerProcess, start_server

README = Path(__file__).resolve().parents[1] / "README.md"


def blocks(lang: str) -> list[str]:
    return re.findall(rf"```{lang}\n(.*?)```", README.read_text("utf-8"), re.S)


def test_opens_with_the_two_fresh_machine_commands() -> None:
    first, second = blocks("sh")[:2]
    assert first.strip() == 'pip install -e ".[all]" && fishpredict serve'
    assert second.strip() == "bash .ci/run"
    ci = (README.parent / ".ci" / "run").read_text("utf-8")
    assert 'pip install -q --disable-pip-version-check -e ".[test]"' in ci
    assert "pytest" in ci


def test_python_example_runs(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["train", "--out", "models"]) == 0
    code = blocks("python")[0]
    namespace: dict[str, object] = {}
    exec(compile(code, "README.md", "exec"), namespace)
    from fishpredict import Predictor

    p = Predictor()
    for line in code.splitlines():  # every `call  # 'answer'` comment is the real answer
        m = re.match(r"(p\.predict\w*\(.*\))\s+# (.+)$", line.strip())
        if m:
            assert repr(eval(m.group(1), {"p": p})) == m.group(2)


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
