"""``fishpredict perf hotpath`` (fishpredict/perf/hotpath*.py, ceiling.py):
the ceiling answers, the pools never repeat a row, every step and every figure is printed."""

from __future__ import annotations

import http.client
import json
import re
from pathlib import Path

import numpy as np
import pytest

from fishpredict.cli import main
from fishpredict.perf import hotpath
from fishpredict.perf.ceiling import BODY
from fishpredict.perf.hotpath_workloads import WORKLOADS, Workload


def test_the_ceiling_answers_every_request_with_its_fixed_body() -> None:
    with hotpath.ceiling_server() as c:
        host, port = c.host.split(":")
        conn = http.client.HTTPConnection(host, int(port), timeout=10)
        try:
            for method, path, body in (("GET", "/fish?length=1", None),
                                       ("POST", "/v2/models/x/infer", b'{"a":1}')):
                conn.request(method, path, body)
                reply = conn.getresponse()
                assert (reply.status, reply.read()) == (200, BODY)
        finally:
            conn.close()


@pytest.mark.parametrize("w", WORKLOADS, ids=lambda w: w.key)
def test_a_pool_holds_distinct_rows_as_valid_requests(w: Workload) -> None:
    pool = w.pool(3000, 5, "127.0.0.1:1")
    assert len(pool) == 3000
    rows = w.rows(3000, 5)
    assert len(np.unique(rows, axis=0)) == 3000
    first = pool.requests[0]
    head, _, body = first.partition(b"\r\n\r\n")
    if w.key == "fish":
        assert head.startswith(b"GET /fish?length=") and body == b""
    else:
        doc = json.loads(body)
        assert doc["inputs"][0]["shape"] == [1, rows.shape[1]]
        assert doc["inputs"][0]["data"] == rows[0].tolist()
        assert f"Content-Length: {len(body)}".encode() in head


def test_part_b_prints_every_step_for_every_workload(capsys: pytest.CaptureFixture[str]
                                                     ) -> None:
    from fishpredict.perf.hotpath_steps import LABELS, run_steps

    figures = run_steps(quick=True)
    out = capsys.readouterr().out
    assert set(figures) == {w.key for w in WORKLOADS}
    for key, steps in figures.items():
        assert set(steps) == set(LABELS), key
        assert all(v > 0 for v in steps.values()), steps
    for label in LABELS.values():
        assert re.search(re.escape(label) + r"\s+\d+\.\d\d\s+\d+\.\d\d\s+\d+\.\d\d", out), label


@pytest.mark.slow
def test_perf_hotpath_prints_each_server_against_the_ceiling(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out_json = tmp_path / "hotpath.json"
    code = main(["perf", "hotpath", "--duration", "0.3", "--connections", "4", "--parts", "a",
                 "--backends", "socket", "--json", str(out_json)])
    text = capsys.readouterr().out
    assert code == 0, text
    table = text.split("## a. requests/s", 1)[1].split("## targets", 1)[0]
    for w in WORKLOADS:
        for server in (hotpath.CEILING, "socket"):
            assert re.search(rf"^{w.key}\s+{server}\s+[\d,]+\s+\d+%", table, re.M), (w, server)
    targets = [line for line in text.splitlines() if line.startswith("target: ")]
    assert len(targets) == len(hotpath.TARGETS) + 1
    figures = json.loads(out_json.read_text())["a"]
    for w in WORKLOADS:
        socket = figures["figures"][w.key]["socket"]
        assert socket["requests"] > 0 and socket["error_count"] == 0
        assert socket["pool"] >= socket["requests"]  # no row sent twice
