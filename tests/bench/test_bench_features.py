"""`fishpredict bench` against a real fishpredict server: SLO exit codes, the baseline,
answer checks (k = 49), the pre-flight, mixes, stages, outputs checked before the load,
--json -, and Ctrl-C. Each load is 1-2 s or a few hundred requests."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from fishpredict.cli import main
from fishpredict.server.process import ServerProcess, start_server


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_server("socket") as srv:
        yield srv


def bench(*args: str) -> list[str]:
    return ["bench", *args, "--threads", "2", "--quiet"]


def test_failing_slo_exits_99_and_passing_exits_0(
    server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out = tmp_path / "r.json"
    code = main(bench(server.url, "--requests", "300", "--slo", "p99<10s", "--slo",
                      "errors<1%", "--json", str(out)))
    assert code == 0
    doc = json.loads(out.read_text())
    assert [v["ok"] for v in doc["slo"]] == [True, True]
    code = main(bench(server.url, "--requests", "300", "--slo", "tps>=1e9", "--slo",
                      "p99<10s"))
    assert code == 99
    text = capsys.readouterr().out
    assert "FAIL" in text and "1 of 2 hold" in text and "exit code 99" in text


def test_http_errors_fail_the_errors_slo(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(bench(server.url + "/no/such/route", "--endpoint", "get", "--requests", "50",
                      "--no-preflight", "--slo", "errors<0.1%"))
    assert code == 99
    assert "HTTP 404: 50" in capsys.readouterr().out


def test_slo_abort_stops_a_run_that_cannot_pass(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    code = main(bench(server.url + "/nope", "--endpoint", "get", "--duration", "20",
                      "--no-preflight", "--slo", "errors<1%", "--slo-abort"))
    assert code == 99
    assert time.monotonic() - t0 < 8  # lost for good after its first second
    assert "stopped early: SLO 'errors<1%' lost for good" in capsys.readouterr().out


def test_baseline_comparison_and_baseline_slo(
    server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    base = tmp_path / "base.json"
    assert main(bench(server.url, "--duration", "1.5", "--json", str(base))) == 0
    capsys.readouterr()
    code = main(bench(server.url, "--duration", "1.5", "--baseline", str(base), "--slo",
                      "tps>=0.0001*baseline", "--json", str(tmp_path / "new.json")))
    assert code == 0
    text = capsys.readouterr().out
    assert f"baseline  {base}" in text and "beyond noise?" in text
    for label in ("TPS", "p50 (ms)", "p99 (ms)", "errors (%)"):
        assert label in text
    doc = json.loads((tmp_path / "new.json").read_text())
    assert {r["figure"] for r in doc["baseline"]["rows"]} >= {"tps", "p50", "p99"}
    assert doc["slo"][0]["threshold"] == pytest.approx(
        0.0001 * json.loads(base.read_text())["rps"])


def test_k49_answers_bream_and_none_is_wrong(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(bench(server.url, "--k", "49", "--requests", "600", "--json", "-")) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["errors"] == {} and doc["successes"] == 600
    assert doc["checked"] == 600 and 0.5 < doc["accuracy"] < 1.0  # the bream share


def test_k49_text_reports_zero_wrong_and_accuracy_apart(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(bench(server.url, "--k", "49", "--requests", "200", "--endpoint", "batch",
                      "--batch-rows", "4")) == 0
    text = capsys.readouterr().out
    assert "answers   0 wrong" in text
    assert "\naccuracy  " in text and "carry the data's label" in text


@pytest.mark.parametrize("args", [["--endpoint", "v2", "--model", "no-such-model"],
                                  ["--k", "7"]])
def test_an_unknown_model_is_refused_before_the_load(
    server: ServerProcess, args: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    t0 = time.monotonic()
    code = main(bench(server.url, "--duration", "30", *args))
    took = time.monotonic() - t0
    err = capsys.readouterr().err
    assert code == 2 and took < 2.0, (took, err)
    assert err.startswith("fishpredict bench: error: pre-flight: ") and err.count("\n") == 1
    assert "HTTP 404" in err


def test_bad_output_path_fails_before_the_load(
    server: ServerProcess, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    for opt in ("--chart", "--html", "--csv"):
        t0 = time.monotonic()
        code = main(bench(server.url, "--duration", "30", opt, str(tmp_path / "no" / "x")))
        assert code == 2 and time.monotonic() - t0 < 2.0
        err = capsys.readouterr().err
        assert f"cannot write {opt}" in err and err.count("\n") == 1


def test_users_beyond_the_open_file_limit_are_refused_in_one_line(
    server: ServerProcess
) -> None:
    def low_limit() -> None:
        resource.setrlimit(resource.RLIMIT_NOFILE, (200, 200))

    proc = subprocess.run(
        [sys.executable, "-m", "fishpredict", "bench", server.url, "--threads", "500",
         "--duration", "30", "--quiet"],
        capture_output=True, text=True, timeout=60, preexec_fn=low_limit, check=False)
    assert proc.returncode == 2, proc.stderr
    assert proc.stderr.count("\n") == 1 and "open files" in proc.stderr
    assert "Traceback" not in proc.stderr


def test_mix_reports_each_item(server: ServerProcess, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(bench(server.url, "--requests", "400", "--mix", "3:endpoint=fish,k=5",
                      "--mix", "1:endpoint=batch,k=15,batch-rows=4,name=batch15",
                      "--json", "-"))
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    items = {i["name"]: i for i in doc["items"]}
    assert set(items) == {"endpoint=fish,k=5", "batch15"}
    assert sum(i["requests"] for i in items.values()) == doc["requests"] == 400
    assert items["endpoint=fish,k=5"]["requests"] == pytest.approx(300, abs=4)
    assert all(i["errors"] == {} and i["latency_ms"]["p50"] > 0 for i in items.values())


def test_stages_ramp_the_rate_and_count_the_unsent(
    server: ServerProcess, capsys: pytest.CaptureFixture[str]
) -> None:
    code = main(["bench", server.url, "--stages", "1s:400,1s:400", "--connections", "4",
                 "--quiet", "--json", "-"])
    assert code == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["model"] == "open" and doc["stages"] == [[1.0, 400.0], [1.0, 400.0]]
    assert doc["intended"] == pytest.approx(600, abs=1)  # 200 ramping + 400 flat
    assert doc["sent"] + doc["unsent"] == pytest.approx(600, abs=2)
    rows = [r for r in doc["timeline"] if r["span_s"] >= 0.999]
    assert [round(r["intended"]) for r in rows[:2]] == [200, 400]


def test_json_dash_is_pure_json(server: ServerProcess, tmp_path: Path) -> None:
    proc = subprocess.run(
        [sys.executable, "-m", "fishpredict", "bench", server.url, "--requests", "100",
         "--threads", "2", "--json", "-"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["successes"] == 100
    assert "TPS" in proc.stderr  # the text report went to stderr


def test_ctrl_c_exits_130_with_what_was_measured(server: ServerProcess) -> None:
    proc = subprocess.Popen(
        [sys.executable, "-m", "fishpredict", "bench", server.url, "--duration", "60",
         "--threads", "2"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        assert proc.stderr is not None
        deadline = time.monotonic() + 30
        # the plain progress line comes every 5 s; the run is on once it is there
        while time.monotonic() < deadline:
            line = proc.stderr.readline()
            if "tps" in line or not line:
                break
        assert "tps" in line
        os.kill(proc.pid, signal.SIGINT)
        out, _ = proc.communicate(timeout=30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    assert proc.returncode == 130
    assert "(interrupted)" in out and "successes" in out
