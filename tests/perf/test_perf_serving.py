"""Smoke test of ``fishpredict perf serving``: structure and every figure line, never speed.

The suite starts real servers (the seed's FastAPI server and every backend, one
and two workers) and loads each for a fraction of a second; the test checks
that each row, ratio and target line is printed and the JSON and chart are
written. Whether a target is MET depends on the machine, so it is not asserted.
"""

from __future__ import annotations

import json
import os
import re
from dataclasses import replace
from pathlib import Path

import pytest

from fishpredict.cli import main
from fishpredict.perf import serving
from fishpredict.perf.loads import Load, Measurement
from fishpredict.perf.report import notes, ratio

VERDICT = re.compile(r" (MET|NOT MET)$")


def test_contenders_are_the_baseline_then_each_backend_then_two_workers() -> None:
    names = [c.name for c in serving.contenders(("starlette", "socket"))]
    assert names == [
        serving.BASELINE,
        "starlette",
        "socket",
        "starlette --workers 2",
        "socket --workers 2",
    ]
    assert serving.contenders(("socket",))[-1].args == ("--workers", "2")


def test_ratio_of_a_failed_baseline_is_nan_not_a_crash() -> None:
    assert ratio(10.0, 4.0) == 2.5
    assert ratio(1.0, 0.0) != ratio(1.0, 0.0)  # NaN


def test_notes_group_warnings_and_skip_the_machine_busy_one() -> None:
    def m(name: str, *warnings: str) -> Measurement:
        return Measurement(
            name=name,
            connections=64,
            rps=1.0,
            p50_ms=1.0,
            p99_ms=2.0,
            requests=10,
            errors={},
            generator_cores=0.1,
            server_cores=0.5,
            machine_busy_pct=100.0,
            warnings=list(warnings),
        )

    lines = notes([m("a", "w1", "the machine's CPUs were 100% busy"), m("b", "w1")])
    assert lines == ["note (a, b): w1"]


@pytest.mark.slow
def test_perf_serving_prints_every_figure_and_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json, chart = tmp_path / "serving.json", tmp_path / "serving.png"
    code = main(
        [
            "perf",
            "serving",
            "--duration",
            "0.3",
            "--connections",
            "4",
            "--json",
            str(out_json),
            "--chart",
            str(chart),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0] == "# fishpredict perf serving"
    assert lines[1].startswith("# machine: ") and "cores" in lines[1]
    assert lines[2].startswith("# python ") and "scikit-learn" in lines[2]
    assert any(line.startswith("# load average") for line in lines)

    names = [c.name for c in serving.contenders()]
    table = text.split("## requests/s at 4 connections", 1)[1].split("## targets", 1)[0]
    assert "req/s" in table and "p99 ms" in table and "vs baseline" in table
    assert "gen CPU" in table
    for name in names:
        row = next(line for line in table.splitlines() if line.startswith(name + "  "))
        assert re.search(r"\d[\d,.]*x", row), row  # its ratio vs the baseline

    targets = [line for line in lines if line.startswith("target: ")]
    assert all(VERDICT.search(t) for t in targets), targets
    for backend, want in serving.TARGET_RATIOS.items():
        assert any(t.startswith(f"target: {backend} >= {want:g}x") for t in targets)
    p99 = [t for t in targets if " p99 < 20 ms" in t]
    assert len(p99) == len(names) - 1  # every fishpredict server, not the baseline
    assert any(t.startswith("target: zero errors in every run") for t in targets)

    figures = json.loads(out_json.read_text())
    assert [r["name"] for r in figures["runs"]] == names
    assert figures["runs"][0]["ratio_vs_baseline"] == 1.0
    assert all(r["requests"] > 0 for r in figures["runs"])
    assert set(figures["targets_met"]) >= {
        "starlette_ratio",
        "aiohttp_ratio",
        "socket_ratio",
        "zero_errors",
    }
    assert chart.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_other_cores_is_what_the_run_does_not_explain() -> None:
    m = Measurement(
        name="x",
        connections=64,
        rps=1.0,
        p50_ms=1.0,
        p99_ms=1.0,
        requests=1,
        errors={},
        generator_cores=0.25,
        server_cores=1.0,
        machine_busy_pct=100.0,
        irq_cores=0.25,
    )
    assert m.other_cores == pytest.approx(max(0.0, (os.cpu_count() or 1) - 1.25))
    assert replace(m, server_cores=None).other_cores is None


def test_load_describes_itself() -> None:
    text = Load(duration_s=2, connections=1).describe()
    assert "1 keep-alive connection," in text and "2 s" in text and "1,5,15,25,49" in text


def _measured(other_busy_pct: float) -> Measurement:
    """A measurement whose machine was ``other_busy_pct`` busier than server + generator."""
    n = os.cpu_count() or 1
    return Measurement(
        name="x",
        connections=64,
        rps=1.0,
        p50_ms=1.0,
        p99_ms=1.0,
        requests=1,
        errors={},
        generator_cores=0.0,
        server_cores=0.0,
        machine_busy_pct=other_busy_pct * 100 / n,
    )


def test_a_disturbed_load_is_measured_again_and_the_quietest_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    from fishpredict.perf import loads

    attempts = iter([_measured(0.9), _measured(0.5), _measured(0.1), _measured(0.0)])
    monkeypatch.setattr(loads, "_measure_once", lambda *a: next(attempts))
    m = loads.measure("x", "http://127.0.0.1:1", Load(settle_s=1.0))
    assert m.other_cores == pytest.approx(0.1)  # the third was quiet enough: no fourth
    assert any("measured 3 times" in w for w in m.warnings)
    assert next(attempts).other_cores == 0.0


def test_without_settle_a_load_is_measured_once(monkeypatch: pytest.MonkeyPatch) -> None:
    from fishpredict.perf import loads

    calls = []
    monkeypatch.setattr(loads, "_measure_once", lambda *a: calls.append(a) or _measured(0.9))
    m = loads.measure("x", "http://127.0.0.1:1", Load())
    assert len(calls) == 1 and m.warnings == []
