"""The text, JSON, CSV and PNG reports of a real run."""

from __future__ import annotations

import csv
import json
import math
from collections.abc import Iterator
from pathlib import Path

import pytest

from fishpredict.bench import BenchConfig, BenchResult, run_bench
from fishpredict.bench.chart import write_chart
from fishpredict.bench.fixedserver import fixed_nginx
from fishpredict.bench.report import CSV_COLUMNS, format_text, write_csv, write_json
from fishpredict.ops.nginx import nginx_path

pytestmark = pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed")


@pytest.fixture(scope="module")
def result() -> Iterator[BenchResult]:
    with fixed_nginx() as server:
        yield run_bench(
            BenchConfig(
                server.url + "/missing",
                endpoint="get",
                threads=4,
                duration_s=2.0,
                ramp_up_s=1.0,
                ramp_step=2,
            )
        )


def test_text_report_names_the_figures(result: BenchResult) -> None:
    text = format_text(result)
    for word in (
        "TPS",
        "peak TPS",
        "mean test time",
        "p99.9",
        "errors",
        "HTTP 404",
        "generator CPU",
    ):
        assert word in text
    assert f"{result.requests:,}" in text


def test_json_round_trips(result: BenchResult, tmp_path: Path) -> None:
    path = tmp_path / "r.json"
    write_json(result, path)
    doc = json.loads(path.read_text())
    assert doc["requests"] == result.requests == doc["successes"] + doc["error_count"]
    assert doc["errors"] == {"status_404": result.requests}
    assert doc["config"]["endpoint"] == "get"
    assert len(doc["timeline"]) == len(result.timeline) >= 2
    assert doc["latency_ms"]["p50"] is None  # no successes: NaN becomes null, valid JSON


def test_csv_has_one_row_per_second(result: BenchResult, tmp_path: Path) -> None:
    path = tmp_path / "r.csv"
    write_csv(result, path)
    with path.open(newline="") as f:
        rows = list(csv.reader(f))
    assert tuple(rows[0]) == CSV_COLUMNS
    assert rows[0][:7] == ["second", "tps", "errors", "p50_ms", "p90_ms", "p99_ms", "active_users"]
    body = rows[1:]
    assert [int(r[0]) for r in body] == list(range(len(body)))
    assert sum(int(r[2]) for r in body) == result.error_count
    assert [int(r[6]) for r in body][:2] == [2, 4]  # the ramp-up step at 1 s


def test_chart_is_a_png(result: BenchResult, tmp_path: Path) -> None:
    import matplotlib.image

    path = tmp_path / "r.png"
    write_chart(result, path)
    assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    img = matplotlib.image.imread(str(path))
    assert img.shape[0] > 300 and img.shape[1] > 500


def test_successful_run_reports_latency(tmp_path: Path) -> None:
    with fixed_nginx() as server:
        r = run_bench(BenchConfig(server.url, threads=2, requests=500, check_answers=False))
    doc = json.loads(r.to_json())
    lat = doc["latency_ms"]
    assert all(
        isinstance(lat[k], float) and math.isfinite(lat[k])
        for k in ("min", "p50", "p90", "p99", "p99.9", "max", "mean")
    )
    assert set(r.percentiles) == {"p50", "p90", "p99", "p99.9"}
