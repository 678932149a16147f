"""The root command line (fishpredict/cli/group.py): the commands it lists, plugin
commands through the hook, errors as one line, and what ``--help`` imports."""

from __future__ import annotations

import json
import os
import resource
import subprocess
import sys

import click
import pytest

from fishpredict.cli import cli, main
from fishpredict.errors import DataError

#: what ``fishpredict --help`` listed before the click rewrite, in its order
ARGPARSE_COMMANDS = ["train", "serve", "backends", "data", "evaluate", "predict", "perf",
                     "cluster", "bench", "experiment", "soak"]


def run(*args: str, code: str | None = None) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-c", code] if code else [sys.executable, "-m", "fishpredict", *args]
    env = {k: v for k, v in os.environ.items() if not k.startswith("FISHPREDICT_")}
    return subprocess.run(argv, capture_output=True, text=True, timeout=120, env=env,
                          check=False)


def test_every_command_of_before_is_listed_and_the_core_comes_first() -> None:
    names = cli.list_commands(click.Context(cli))
    assert set(ARGPARSE_COMMANDS) <= set(names)
    assert names[:7] == ["train", "serve", "backends", "data", "evaluate", "predict", "models"]
    assert names.index("perf") < names.index("bench") < names.index("soak")


def test_builtin_groups_arrive_through_the_hook() -> None:
    """bench, perf, experiment, cluster and soak are not added by fishpredict.cli itself."""
    import fishpredict.cli as package

    core = [c.name for c in vars(package).values() if isinstance(c, click.Command)]
    assert not {"bench", "perf", "experiment", "cluster", "soak"} & set(core)


def test_the_example_plugin_adds_a_command_that_runs() -> None:
    listed = run("--help")
    assert listed.returncode == 0, listed.stderr
    assert "httpserver-info" in listed.stdout
    ran = run("httpserver-info", "--json")
    assert ran.returncode == 0, ran.stderr
    facts = json.loads(ran.stdout)
    assert facts["backend"] == "httpserver" and facts["available"] is True


@pytest.mark.parametrize("args", [["--help"], ["backends"], ["bench", "--help"],
                                  ["serve", "--help"]])
def test_no_scikit_learn_for_help_and_listing(args: list[str]) -> None:
    code = ("import sys\nfrom fishpredict.cli import main\n"
            f"try:\n    rc = main({args!r})\nexcept SystemExit as e:\n    rc = e.code\n"
            "print('RESULT', rc, 'sklearn' in sys.modules, 'pandas' in sys.modules)")
    result = run(code=code)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip().splitlines()[-1] == "RESULT 0 False False"


def test_help_is_fast() -> None:
    """Well under the 2.1 s of CPU (2.7 s wall) that importing scikit-learn took:
    CPU time of the child, so that a busy shared machine does not decide."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    assert run("--help").returncode == 0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    assert cpu < 1.2, f"fishpredict --help took {cpu:.2f} s of CPU"


def test_usage_error_is_one_line_and_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["serve", "--port", "70000"])
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("fishpredict serve: error: Invalid value for '--port'")
    assert err.endswith("(see fishpredict serve --help)\n") and err.count("\n") == 1


def test_unknown_command_and_option(capsys: pytest.CaptureFixture[str]) -> None:
    for argv, needle in ([["nosuch"], "No such command 'nosuch'"],
                         [["train", "--nope"], "No such option '--nope'"]):
        with pytest.raises(SystemExit):
            main(argv)
        err = capsys.readouterr().err
        assert needle in err and err.count("\n") == 1, err


def test_library_errors_end_as_one_line(monkeypatch: pytest.MonkeyPatch,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*_: object, **__: object) -> None:
        raise DataError("fish.csv: row 3, column 'weight': not a number")

    monkeypatch.setattr("fishpredict.fish.synth.write", broken)
    assert main(["data", "generate", "--out", "x.csv"]) == 1
    assert capsys.readouterr().err == ("fishpredict data: error: fish.csv: row 3, column "
                                       "'weight': not a number\n")


def test_unexpected_exception_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                          capsys: pytest.CaptureFixture[str]) -> None:
    def broken(*_: object, **__: object) -> None:
        raise RuntimeError("first\nsecond")

    monkeypatch.setattr("fishpredict.fish.synth.write", broken)
    monkeypatch.delenv("FISHPREDICT_DEBUG", raising=False)
    assert main(["data", "generate", "--out", "x.csv"]) == 1
    err = capsys.readouterr().err
    assert err.startswith("fishpredict data: internal error: RuntimeError: first; second")
    assert err.count("\n") == 1


def test_no_command_prints_help_and_exits_2() -> None:
    result = run()
    assert result.returncode == 2
    assert "Commands:" in result.stderr and "Traceback" not in result.stderr


def test_version() -> None:
    result = run("--version")
    assert result.returncode == 0 and result.stdout.startswith("fishpredict 0.")


def test_a_broken_plugin_is_one_warning_and_the_rest_works(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import types

    from fishpredict import hookimpl
    from fishpredict.cli.group import FishpredictGroup
    from fishpredict.plugins import Registry

    broken = types.ModuleType("broken_cmds")

    @hookimpl
    def register_commands(cli: click.Group) -> None:
        raise ImportError("needs a module that is not installed")

    broken.register_commands = register_commands  # type: ignore[attr-defined]
    registry = Registry()
    registry.register_plugin(broken, name="broken-cmds")
    monkeypatch.setattr("fishpredict.plugins.registry", lambda: registry)
    group = FishpredictGroup("fishpredict")
    names = group.list_commands(click.Context(group))
    assert "bench" in names and "soak" in names
    assert capsys.readouterr().err == ("fishpredict: plugin 'broken-cmds' added no commands: "
                                       "ImportError: needs a module that is not installed\n")
    group.list_commands(click.Context(group))
    assert capsys.readouterr().err == ""  # plugins are asked once
