"""``fishpredict perf ...`` (fishpredict/cli/perf.py): every option reaches its suite's
``run``, ``--json FILE`` writes what ``run`` returns, a missing suite is one line.

The suites themselves are replaced by recorders here (they are measured by their
own tests); this is about the command line only.
"""

from __future__ import annotations

import json
import sys
import types
from pathlib import Path
from typing import Any

import pytest

from fishpredict.cli import main


def recorder(monkeypatch: pytest.MonkeyPatch, name: str) -> list[dict[str, Any]]:
    """Install ``fishpredict.perf.<name>`` whose ``run`` records its arguments."""
    calls: list[dict[str, Any]] = []

    def run(*args: Any, **kwargs: Any) -> dict[str, Any]:
        calls.append({"args": args, **kwargs})
        return {"suite": name, "ok": True}

    module = types.ModuleType(f"fishpredict.perf.{name}")
    module.run = run  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, f"fishpredict.perf.{name}", module)
    import fishpredict.perf

    monkeypatch.setattr(fishpredict.perf, name, module, raising=False)
    return calls


@pytest.mark.parametrize(
    ("argv", "want"),
    [
        (["models"], {"quick": False}),
        (["models", "--quick"], {"quick": True}),
        (["models", "--seconds", "0.2", "--only", "knn, forest"],
         {"quick": False, "seconds": 0.2, "only": ("knn", "forest")}),
        (["models", "--quick", "--no-http"], {"quick": True, "http": False}),
        (["peers", "--quick", "--mlserver", "/opt/mlserver"],
         {"quick": True, "mlserver": "/opt/mlserver", "connections": 64, "settle_s": 0.0}),
        (["peers", "--connections", "8", "--settle", "30"],
         {"quick": False, "mlserver": None, "connections": 8, "settle_s": 30.0}),
        (["predictor", "--rows", "2_000", "--quick"], {"big_rows": 2000, "quick": True}),
        (["dask"], {"rows": 10_000_000, "quick": False, "workers": 2, "work_dir": None}),
        (["dask", "--quick", "--rows", "5000", "--workers", "3", "--work-dir", "/tmp/w"],
         {"rows": 5000, "quick": True, "workers": 3, "work_dir": "/tmp/w"}),
        (["hotpath", "--quick", "--backends", "socket", "--duration", "1.5"],
         {"quick": True, "duration": 1.5, "connections": 64, "backends": ("socket",),
          "parts": "ab", "settle_s": 0.0}),
        (["hotpath", "--parts", "b", "--backends", "nosuch", "--settle", "60"],
         {"quick": False, "duration": None, "connections": 64, "backends": (),
          "parts": "b", "settle_s": 60.0}),
    ],
)
def test_options_reach_run_and_json_is_written(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, argv: list[str], want: dict[str, Any]
) -> None:
    calls = recorder(monkeypatch, argv[0])
    out = tmp_path / "figures.json"
    assert main(["perf", *argv, "--json", str(out)]) == 0
    assert calls == [{"args": (), **want}]
    assert json.loads(out.read_text()) == {"suite": argv[0], "ok": True}


def test_json_dash_is_stdout(monkeypatch: pytest.MonkeyPatch,
                             capsys: pytest.CaptureFixture[str]) -> None:
    recorder(monkeypatch, "models")
    assert main(["perf", "models", "--json", "-"]) == 0
    assert json.loads(capsys.readouterr().out) == {"suite": "models", "ok": True}


def test_serving_and_scaling_build_one_load(monkeypatch: pytest.MonkeyPatch) -> None:
    serving, scaling = recorder(monkeypatch, "serving"), recorder(monkeypatch, "scaling")
    assert main(["perf", "serving", "--quick", "--connections", "8", "--backends",
                 "socket"]) == 0
    (call,) = serving
    load, backends = call["args"]
    assert backends == ("socket",)
    assert (load.duration_s, load.connections, load.warmup_s) == (3.0, 8, 0.5)
    assert main(["perf", "scaling", "--duration", "2", "--parts", "ab",
                 "--batch-wait-us", "50"]) == 0
    (call,) = scaling
    assert call["args"][0].duration_s == 2.0 and call["parts"] == "ab"
    assert call["wait_us"] == 50 and call["slice_requests"] == 2000
    assert call["memory_workers"] == 4


def test_a_suite_that_is_not_there_is_one_line(monkeypatch: pytest.MonkeyPatch,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    monkeypatch.setitem(sys.modules, "fishpredict.perf.models", None)  # import fails
    assert main(["perf", "models", "--quick"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fishpredict perf: error: fishpredict perf models is not available")
    assert err.count("\n") == 1


@pytest.mark.parametrize(
    ("argv", "needle", "exit_code"),
    [
        (["serving", "--backends", "nosuch"], "unknown backend 'nosuch'", 1),
        (["serving", "--backends", ","], "--backends needs at least one backend", 2),
        (["scaling", "--batch-wait-us", "-1"], "Invalid value for '--batch-wait-us'", 2),
        (["serving", "--duration", "0"], "is not in the range x>0", 2),
        (["hotpath", "--parts", "c"], "--parts takes a, b or both", 2),
        (["hotpath", "--backends", "nosuch"], "unknown backend 'nosuch'", 1),
    ],
)
def test_bad_options_are_one_line(capsys: pytest.CaptureFixture[str], argv: list[str],
                                  needle: str, exit_code: int) -> None:
    try:
        code = main(["perf", *argv])
    except SystemExit as exc:
        code = int(exc.code or 0)
    err = capsys.readouterr().err
    assert code == exit_code and needle in err and err.count("\n") == 1, err
