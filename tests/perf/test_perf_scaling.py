"""Smoke test of ``fishpredict perf scaling``: structure and every figure line, never speed.

Runs every part with tiny loads (a fraction of a second, a few connections, a
small bulk and slice) and checks that each part's table, ratio and target line
is printed, and the JSON. Verdicts depend on the machine and are not asserted.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np
import pytest

from fishpredict.cli import main
from fishpredict.ops.nginx import nginx_path
from fishpredict.perf.bulk import SequentialTiming, disagreements

VERDICT = re.compile(r" (MET|NOT MET)$")


def test_sequential_timing_extrapolates_per_request() -> None:
    t = SequentialTiming(requests=200, seconds=0.5, answers={})
    assert t.per_request_s == 0.0025
    assert t.extrapolate(500_000) == pytest.approx(1250.0)


def test_disagreements_compare_labels_in_any_language() -> None:
    seq = SequentialTiming(2, 0.1, {(0, 5): 1, (1, 5): 0, (1, 49): 1})
    bulk = {5: np.array(["bream", "bream"]), 49: np.array(["bream", "bream"])}
    assert disagreements(seq, bulk) == 1  # row 1, k=5: smelt one by one, bream in bulk


@pytest.mark.slow
@pytest.mark.nginx
@pytest.mark.skipif(nginx_path() is None, reason="nginx is not installed")
def test_perf_scaling_prints_every_part_figure_and_target(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "scaling.json"
    code = main(
        [
            "perf",
            "scaling",
            "--duration",
            "0.3",
            "--connections",
            "4",
            "--bulk-rows",
            "2000",
            "--slice",
            "50",
            "--flat-rows",
            "5000",
            "--memory-model",
            "knn",
            "--memory-rows",
            "200000",
            "--memory-workers",
            "2",
            "--json",
            str(out_json),
        ]
    )
    text = capsys.readouterr().out
    assert code == 0, text
    lines = text.splitlines()
    assert lines[0] == "# fishpredict perf scaling"
    assert lines[1].startswith("# machine: ")
    for part in (
        "## a. micro-batching",
        "## b. --workers 2 vs --workers 1",
        "## c. bulk",
        "## d. the socket backend vs nginx",
        "## c2. flat memory: fishpredict predict --url",
        "## e. memory: 2 workers share one copy of the model",
    ):
        assert part in text

    targets = [line for line in lines if line.startswith("target: ")]
    assert all(VERDICT.search(t) or t.endswith("(not judged)") for t in targets), targets
    wanted = [
        "batching on >= 8x off",
        "p50 at 1 connection, batching on within 10% of off",
        "2 workers >= 1.7x 1 worker",
        "<= 1 s applies to 100,000 rows",
        ".npy bulk >= 300x faster",
        "socket fast path, 2 workers (the machine's cores, as nginx's ceiling is measured "
        "on them) >= 45% of nginx",
        "each extra worker copies <= 10% of the model",
        "zero errors in every load",
    ]
    for want in wanted:
        assert any(want in t for t in targets), want
    assert "also: batching on, 2 workers vs 1" in text
    assert "also: batching on with --batch-wait-us 0 vs off" in text
    assert "also: socket fast path, 1 worker -> " in text
    assert "connections per worker during the load: socket sklearn batching off, 2 workers" in text
    assert "(*) extrapolated: 50 requests measured" in text
    assert re.search(r"-> 0 disagreements", text)

    figures = json.loads(out_json.read_text())
    assert figures["bulk"]["rows"] == 2000 and figures["bulk"]["predictions"] == 10_000
    # a and b: 5 servers, 3 of them also at 1 connection; d: 2 servers and nginx
    assert len(figures["runs"]) == 8 + 3
    assert figures["nginx"]["nginx"]["rps"] > 0
    assert set(figures["targets_met"]) >= {
        "socket_batching_ratio",
        "socket_workers_ratio",
        "bulk_ratio",
        "nginx_share",
        "memory_model_per_worker",
        "zero_errors",
    }
    assert "peak memory for 50,000 rows <= 1.25x that for 5,000" in text
    flat = figures["flat_memory"]["runs"]
    assert [(run["rows"], run["lines"]) for run in flat] == [(5000, 5001), (50000, 50001)]
    assert all(run["max_rss_bytes"] > 10 * 2**20 for run in flat)
    memory = figures["memory"]
    assert memory["rows"] == 200_000 and memory["model_file_bytes"] > 200_000 * 16
    servers = memory["servers"]
    assert [len(procs) for procs in servers.values()] == [1, 3, 1, 3]  # supervisor + 2
    for procs in servers.values():
        assert all(0 < p["uss"] <= p["pss"] <= p["rss"] for p in procs)
