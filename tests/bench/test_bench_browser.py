"""The live page (--web) and the HTML report (--html) in a real browser: Debian's
headless Chromium renders them, and the figures in the rendered DOM must equal those
of the run's JSON. Also the live page's event stream, and Dask generators."""

from __future__ import annotations

import json
import os
import queue
import re
import shutil
import signal
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request
from collections.abc import Iterator
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Any

import pytest

from fishpredict.bench.stats import LatencyHistogram
from fishpredict.server.process import ServerProcess, start_server

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
needs_chromium = pytest.mark.skipif(CHROMIUM is None, reason="chromium is not installed")
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]
CELL = re.compile(r'data-key="([^"]+)" data-value="([^"]*)">([^<]*)<')


def dump_dom(url: str) -> str:
    """The DOM Chromium renders for ``url`` once its script ran."""
    assert CHROMIUM is not None
    with tempfile.TemporaryDirectory(prefix="fishpredict-chromium-",
                                     ignore_cleanup_errors=True) as profile:
        proc = subprocess.run(
            [CHROMIUM, *FLAGS, f"--user-data-dir={profile}",
             "--dump-dom", url],
            capture_output=True, text=True, timeout=90, check=False)
    assert proc.returncode == 0, proc.stderr[-2000:]
    return proc.stdout


def js_fixed(v: float, digits: int) -> str:
    """What the page's ``toLocaleString("en-US", {fixed digits})`` shows: the shortest
    decimal of the double, rounded half away from zero, with thousands separators."""
    d = Decimal(repr(v)).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return f"{d:,.{digits}f}"


def figures(dom: str) -> dict[str, tuple[str, str]]:
    """The first ``data-key`` cell of each key: (raw value, text shown)."""
    out: dict[str, tuple[str, str]] = {}
    for key, value, text in CELL.findall(dom):
        out.setdefault(key, (value, text))
    return out


def assert_dom_matches(dom: str, doc: dict[str, Any]) -> None:
    got = figures(dom)
    lat = doc["latency_ms"]
    expect = {
        "rps": (doc["rps"], 1), "peak_rps": (doc["peak_rps"], 1),
        "requests": (doc["requests"], 0), "successes": (doc["successes"], 0),
        "error_count": (doc["error_count"], 0), "elapsed_s": (doc["elapsed_s"], 2),
        **{q: (lat[q], 3) for q in ("p50", "p90", "p99", "p99.9", "min", "max", "mean")},
    }
    for key, (value, digits) in expect.items():
        raw, text = got[key]
        assert float(raw) == value, (key, raw, value)
        assert text == js_fixed(value, digits), (key, text, value)
    for kind, n in doc["errors"].items():
        assert got[f"errors.{kind}"] == (str(n), f"{n:,}")
    for i, verdict in enumerate(doc.get("slo") or []):
        oks = [v for k, v, _ in CELL.findall(dom) if k == "slo.ok"]
        assert oks[i] == str(verdict["ok"]).lower()


@pytest.fixture(scope="module")
def server() -> Iterator[ServerProcess]:
    with start_server("socket") as srv:
        yield srv


@needs_chromium
def test_html_report_shows_the_jsons_figures(server: ServerProcess, tmp_path: Path) -> None:
    report, out = tmp_path / "report.html", tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fishpredict", "bench", server.url, "--duration", "1.5",
         "--threads", "2", "--quiet", "--html", str(report), "--json", str(out),
         "--slo", "p99<10s", "--slo", "tps>=1e9"],
        capture_output=True, text=True, timeout=60, check=False)
    assert proc.returncode == 99, proc.stderr
    doc = json.loads(out.read_text())
    html = report.read_text()
    # nothing to fetch: no external script, style, image or link
    assert not re.search(r"""(src|href)\s*=\s*["']?[a-z]+:""", html) and "<link" not in html
    dom = dump_dom(report.as_uri())
    assert_dom_matches(dom, doc)
    assert 'id="chart-tps"' in dom and "<path" in dom and 'data-state="final"' in dom
    assert 'id="chart-target"' in dom  # the target is fishpredict: its /metrics


class Bench:
    """``fishpredict bench --web 127.0.0.1:0`` in a subprocess, its stderr read by a
    thread; ended by SIGINT (by pid) in :meth:`stop`, killed if it must."""

    def __init__(self, *args: str) -> None:
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "fishpredict", "bench", *args, "--web", "127.0.0.1:0"],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.lines: queue.Queue[str] = queue.Queue()
        threading.Thread(target=self._read, daemon=True).start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self.lines.put(line)

    def url(self, timeout: float = 30) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            try:
                line = self.lines.get(timeout=0.5)
            except queue.Empty:
                continue
            m = re.match(r"live page: (http://\S+/)$", line.strip())
            if m:
                return m[1]
        raise AssertionError("no live page announced")

    def stop(self) -> tuple[int, str]:
        if self.proc.poll() is None:
            os.kill(self.proc.pid, signal.SIGINT)
        try:
            out, _ = self.proc.communicate(timeout=30)
        finally:
            if self.proc.poll() is None:
                self.proc.kill()
                self.proc.wait()
        return self.proc.returncode, out


def wait_state(url: str, want: str, timeout: float = 30) -> dict[str, Any]:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with urllib.request.urlopen(url + "report.json", timeout=5) as resp:
            doc: dict[str, Any] = json.loads(resp.read())
        if doc["state"] == want and doc["report"]:
            return doc
        time.sleep(0.1)
    raise AssertionError(f"the page never reached {want!r}")


@needs_chromium
def test_live_page_updates_then_shows_the_final_report(
    server: ServerProcess, tmp_path: Path
) -> None:
    out = tmp_path / "r.json"
    b = Bench(server.url, "--duration", "3", "--threads", "2", "--quiet", "--json", str(out))
    try:
        url = b.url()
        running = wait_state(url, "running")
        assert running["report"]["requests"] > 0
        # the event stream: a document per second while the run goes
        with urllib.request.urlopen(url + "events", timeout=10) as stream:
            seen: list[dict[str, Any]] = []
            while len(seen) < 2:
                line = stream.readline().decode()
                if line.startswith("data: "):
                    seen.append(json.loads(line[6:]))
        assert seen[0]["state"] in ("running", "final")
        assert len(seen[1]["doc"]["timeline"]) >= len(seen[0]["doc"]["timeline"])
        dom = dump_dom(url)
        assert 'data-state="running"' in dom or 'data-state="final"' in dom
        assert figures(dom)["rps"][0]
        final = wait_state(url, "final")
        doc = json.loads(out.read_text())
        assert final["report"] == doc  # the page's document is the JSON
        dom = dump_dom(url)
        assert 'data-state="final"' in dom
        assert_dom_matches(dom, doc)
    finally:
        code, text = b.stop()
    assert code == 0 and "TPS" in text


@pytest.mark.skipif(os.environ.get("FISHPREDICT_SKIP_DASK") == "1", reason="asked to skip")
def test_dask_local_cluster_two_generators_merge_exactly(
    server: ServerProcess, tmp_path: Path
) -> None:
    pytest.importorskip("distributed")
    out = tmp_path / "r.json"
    proc = subprocess.run(
        [sys.executable, "-m", "fishpredict", "bench", server.url, "--scheduler", "local",
         "--generators", "2", "--duration", "1.5", "--threads", "4", "--quiet",
         "--json", str(out)],
        capture_output=True, text=True, timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr[-3000:]
    doc = json.loads(out.read_text())
    gens = doc["generators"]
    assert len(gens) == 2 and all(g["requests"] > 0 for g in gens)
    assert doc["requests"] == sum(g["requests"] for g in gens)
    assert doc["successes"] == sum(g["successes"] for g in gens)
    merged = LatencyHistogram()
    for g in gens:
        merged.merge(LatencyHistogram.from_sparse(g["histogram"]))
    assert LatencyHistogram.from_sparse(doc["histogram"]).counts.tolist() == \
        merged.counts.tolist()
    for q, key in ((50.0, "p50"), (90.0, "p90"), (99.0, "p99"), (99.9, "p99.9")):
        assert doc["latency_ms"][key] == merged.percentile(q) / 1000
    assert "generators 2 on Dask" in proc.stdout
