"""`fishpredict bench`: options to config, outputs, one-line errors."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fishpredict.bench.fixedserver import fixed_nginx
from fishpredict.cli import main
from fishpredict.ops.nginx import nginx_path
from fishpredict.server.ports import free_port


def test_remote_target_is_one_line_error(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["bench", "http://203.0.113.7:8000", "--duration", "1"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--allow-remote" in err and "Traceback" not in err


def test_bad_option_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(["bench", "http://127.0.0.1:1", "--duration", "-3"])
    assert exc.value.code == 2
    assert "is not in the range x>0" in capsys.readouterr().err


def test_dead_target_exits_non_zero(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    assert main(["bench", f"http://127.0.0.1:{port}", "--requests", "5", "--quiet"]) == 1
    assert "connect: 5" in capsys.readouterr().out


@pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed")
def test_run_writes_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    out_json, out_csv, chart = tmp_path / "r.json", tmp_path / "r.csv", tmp_path / "r.png"
    with fixed_nginx() as server:
        rc = main(
            [
                "bench",
                server.url,
                "--threads",
                "4",
                "--duration",
                "1.5",
                "--k",
                "1,5",
                "--no-check",
                "--json",
                str(out_json),
                "--csv",
                str(out_csv),
                "--chart",
                str(chart),
                "--header",
                "X-Test: 1",
            ]
        )
    assert rc == 0
    captured = capsys.readouterr()
    assert "TPS" in captured.out
    assert "Traceback" not in captured.err
    doc = json.loads(out_json.read_text())
    assert doc["config"]["ks"] == [1, 5] and doc["config"]["threads"] == 4
    assert doc["config"]["extra_headers"] == [["X-Test", "1"]]
    assert doc["successes"] > 0 and doc["errors"] == {}
    assert out_csv.read_text().startswith("second,tps,errors,p50_ms")
    assert chart.stat().st_size > 1000


def test_unwritable_output_is_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    rc = main(
        [
            "bench",
            f"http://127.0.0.1:{port}",
            "--requests",
            "2",
            "--quiet",
            "--json",
            str(tmp_path / "no" / "such" / "dir.json"),
        ]
    )
    assert rc == 2
    assert "cannot write" in capsys.readouterr().err


@pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed")
def test_compare_wrk_prints_both(capsys: pytest.CaptureFixture[str]) -> None:
    from fishpredict.bench.wrk import wrk_path

    if wrk_path() is None:
        pytest.skip("wrk is not installed")
    with fixed_nginx() as server:
        rc = main(
            [
                "bench",
                server.url,
                "--threads",
                "4",
                "--duration",
                "1",
                "--no-check",
                "--quiet",
                "--compare-wrk",
            ]
        )
    assert rc == 0
    out = capsys.readouterr().out
    assert "[native/" in out and "[wrk/" in out
    assert "native/wrk" in out
