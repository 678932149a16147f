"""fishpredict.experiment and ``fishpredict experiment seed``.

The end-to-end test runs the real command once (``--quick``, shortened further)
into a temporary directory: it starts real servers and a real nginx on
loopback, which the command itself stops. The other tests check the pieces
on made-up figures: that the findings follow the numbers, not a script.
"""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

from fishpredict.bench.result import BenchResult, TimelineRow
from fishpredict.cli import main
from fishpredict.errors import ClusterError, ConfigError
from fishpredict.experiment import SeedOptions
from fishpredict.experiment.costs import RequestCosts
from fishpredict.experiment.findings import (
    backend_findings,
    cluster_findings,
    duration,
    generator_note,
    rows_findings,
    seed_findings,
)
from fishpredict.experiment.loads import Load
from fishpredict.experiment.options import LOAD_KS
from fishpredict.experiment.rows import PerRow, RowsResult, Slice
from fishpredict.fish.sweep import Row
from fishpredict.ops.nginx import find_nginx

try:
    find_nginx()
    NO_NGINX = ""
except ClusterError as exc:
    NO_NGINX = str(exc)

#: a figure in a table cell: 1,234 / 1.5 / 0.77x / 100% / 1,500 (slice)
NUMBER = re.compile(r"^-?[\d,]+(\.\d+)?(x|%)?( \([a-z ]+\))?$")
SECTIONS = (
    "## 1. The seed's server: unpickling per request vs loading once",
    "## 2. fishpredict's backends next to the seed's server",
    "## 3. Load balancing: one replica vs two behind nginx",
    "## 4. 100,000 rows x k = 1, 5, 15, 25, 49",
    "## Warnings from the load generator",
)


# -- the whole command, once -----------------------------------------------------------------


@pytest.fixture(scope="module")
def report(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """Run ``fishpredict experiment seed --quick`` (shortened) once; (report, text, stderr)."""
    if NO_NGINX:
        pytest.skip(f"experiment 3 needs nginx: {NO_NGINX}")
    out = tmp_path_factory.mktemp("experiment") / "seed-report.md"
    proc = subprocess.run(
        [
            sys.executable,
            "-m",
            "fishpredict",
            "experiment",
            "seed",
            "--quick",
            "--duration",
            "1",
            "--slice",
            "20",
            "--users",  # the seed's server answers 1,000 users' requests seconds late
            "100",
            "--out",
            str(out),
        ],
        capture_output=True,
        text=True,
        timeout=240,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr[-3000:]
    assert proc.stdout.split() == [str(out)] + [
        str(out.with_suffix("") / name)
        for name in (
            "1-unpickle-per-request.png",
            "2-backends.png",
            "3-load-balancing.png",
            "4-100k-rows.png",
        )
    ]
    return out, out.read_text("utf-8"), proc.stderr


def _tables(text: str) -> list[list[list[str]]]:
    """Every Markdown table: its data rows (header and alignment rows dropped), as cells."""
    tables: list[list[list[str]]] = []
    current: list[list[str]] = []
    for line in [*text.splitlines(), ""]:
        if line.startswith("|"):
            current.append([c.strip() for c in line.strip().strip("|").split("|")])
        elif current:
            tables.append(current[2:])
            current = []
    return tables


@pytest.mark.slow
@pytest.mark.nginx
def test_report_has_every_section_and_the_command(report: tuple[Path, str, str]) -> None:
    _, text, stderr = report
    assert text.startswith("# The seed's four experiments, reproduced\n")
    assert "Made by `fishpredict experiment seed --quick --out " in text
    assert "machine: " in text and " cores, " in text
    for section in SECTIONS:
        assert section in text
    for step in ("experiment 1/4", "experiment 2/4", "experiment 3/4", "experiment 4/4"):
        assert step in stderr


@pytest.mark.slow
@pytest.mark.nginx
def test_every_table_is_filled_with_figures(report: tuple[Path, str, str]) -> None:
    _, text, _ = report
    tables = _tables(text)
    assert len(tables) == 6  # 1: loads + costs, 2, 3, 4: slices + summary
    assert [len(t) for t in tables] == [2, 3, 5, 6, 10, 3]
    for table in tables:
        for row in table:
            assert row[0], row
            for cell in row[1:]:
                assert NUMBER.match(cell), (cell, row)


@pytest.mark.slow
@pytest.mark.nginx
def test_loads_succeeded_and_were_checked(report: tuple[Path, str, str]) -> None:
    _, text, _ = report
    loads = [row for table in _tables(text)[2:4] for row in table]
    for row in loads:
        tps, requests, errors = float(row[2].replace(",", "")), row[7], row[8]
        assert tps > 0, row
        assert int(requests.replace(",", "")) > 0, row
        assert int(errors.replace(",", "")) <= 0.01 * int(requests.replace(",", "")), row


@pytest.mark.slow
@pytest.mark.nginx
def test_charts_are_valid_pngs(report: tuple[Path, str, str]) -> None:
    from PIL import Image

    out, text, _ = report
    links = re.findall(r"!\[[^\]]+\]\(([^)]+\.png)\)", text)
    assert len(links) == 4
    for link in links:
        path = out.parent / link
        assert path.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n", path
        with Image.open(path) as img:
            img.verify()
        with Image.open(path) as img:
            assert img.size[0] >= 800 and img.size[1] >= 300


@pytest.mark.slow
@pytest.mark.nginx
def test_accuracy_table_matches_the_seed(report: tuple[Path, str, str]) -> None:
    _, text, _ = report
    block = text.split("Accuracy of the batch answers", 1)[1].split("```text\n", 1)[1]
    block = block.split("```", 1)[0]
    share = re.search(r"data: 100,000 rows, ([\d.]+)% bream", block)
    assert share is not None, block
    accuracy = {
        int(m.group(1)): m.group(2)
        for m in re.finditer(r"^\s+(\d+)\s+knn-k\d+\s+[\d,]+\s+[\d,]+\s+([\d.]+)%", block, re.M)
    }
    assert sorted(accuracy) == [1, 5, 15, 25, 49]
    for k in (1, 5, 15, 25):
        assert accuracy[k] == "100.000"
    assert accuracy[49] == share.group(1)
    assert f"accuracy {share.group(1)}% = bream share {share.group(1)}%" in block


# -- the pieces, on made-up figures -------------------------------------------------------------


def _result(
    tps: float, users: int = 100, seconds: int = 4, p99: float = 20.0, busy: float | None = 80.0
) -> BenchResult:
    """A run of ``seconds`` (even) whole seconds averaging ``tps``, 5 % up and down from one
    second to the next, every user on from the start."""
    timeline = [
        TimelineRow(
            second=s,
            tps=tps * (1.05 if s % 2 else 0.95),
            errors=0,
            p50_ms=p99 / 2,
            p90_ms=p99,
            p99_ms=p99,
            active_users=users,
            successes=int(tps),
            sent=int(tps),
            late=0,
            generator_cpu_pct=10.0,
        )
        for s in range(seconds)
    ]
    done = int(tps * seconds)
    return BenchResult(
        engine="native",
        model="closed",
        url="http://127.0.0.1:1/",
        requests_desc="GET /fish",
        users=users,
        processes=2,
        elapsed_s=float(seconds),
        requests=done,
        successes=done,
        errors={},
        rps=tps,
        peak_rps=tps,
        mean_ms=users / tps * 1e3,
        latency_ms={"mean": users / tps * 1e3, "p50": p99 / 2, "p99": p99},
        machine_cpu_pct=busy,
        timeline=timeline,
        config={"duration_s": float(seconds)},
    )


COSTS = RequestCosts(
    unpickle_us=50.0,
    sklearn_predict_us=500.0,
    fast_predict_us=10.0,
    model_bytes=2772,
    load_and_predict_us=580.0,
)


def test_seed_findings_explain_the_ratio_from_the_costs() -> None:
    per = Load("seed-per-request", "per request", _result(950.0))
    once = Load("seed-load-once", "load once", _result(1000.0))
    text = " ".join(seed_findings([per, once], COSTS))
    assert "about the same TPS as" in text
    assert "1,000 vs 950 TPS" in text
    # unpickle 50 us, + 30 us for the cold predict: 80 us, 16 % of a 500 us predict
    assert "costs 30.0 us more than a warm one's, so loading per request adds 80.0 us" in text
    assert "per-request loading is 16% of the predict call" in text
    # 1,000 TPS: 1,000 us per request; + 80 us predicts 1.08x
    assert "predicts 1.08x; measured 1.05x ± 0.04" in text
    assert "agrees with the costs" in text
    assert "less difference than expected" in text

    apart = Load("seed-per-request", "per request", _result(500.0))
    text = " ".join(seed_findings([apart, once], COSTS))
    assert "predicts 1.08x; measured 2.00x" in text
    assert "more apart than that spread allows" in text
    assert "This run measured more (2.00x) than they predict." in text
    assert "holds here too" not in text

    costly = RequestCosts(
        unpickle_us=1500.0,
        sklearn_predict_us=500.0,
        fast_predict_us=10.0,
        model_bytes=1,
        load_and_predict_us=2000.0,
    )
    slow = Load("seed-per-request", "per request", _result(400.0))
    text = " ".join(seed_findings([slow, once], costly))
    assert "2.50x the TPS of" in text
    assert "predicts 2.50x" in text
    assert "loading once pays more than the seed saw" in text


def test_backend_findings_rank_the_backends() -> None:
    seed = [
        Load("seed-per-request", "per", _result(400.0)),
        Load("seed-load-once", "once", _result(500.0)),
    ]
    backends = [
        Load("a", "fishpredict a", _result(5000.0)),
        Load("b", "fishpredict b", _result(20000.0)),
        Load("c", "fishpredict c", skipped="needs c"),
    ]
    text = " ".join(backend_findings(seed, backends, COSTS))
    assert "fishpredict b: 20,000 TPS with all users running, 40.00x" in text
    assert "Fastest backend: fishpredict b, 4.00x the slowest (fishpredict a)" in text
    assert "fishpredict c was not measured: needs c" in text


def _cluster(
    direct: float,
    one: float,
    two: float,
    fast_direct: float,
    fast_one: float,
    fast_two: float,
    busy: float = 99.0,
) -> list[Load]:
    figures = {
        "sklearn/direct": direct,
        "sklearn/nginx-1": one,
        "sklearn/nginx-2": two,
        "fast/direct": fast_direct,
        "fast/nginx-1": fast_one,
        "fast/nginx-2": fast_two,
    }
    return [Load(k, k, _result(v, busy=busy)) for k, v in figures.items()]


def test_cluster_findings_follow_the_figures() -> None:
    helps = " ".join(cluster_findings(_cluster(1000, 950, 1700, 20000, 12000, 11000, 60), COSTS))
    assert "load balancing helps: two replicas gave 1.79x (± 0.07) the TPS of one" in helps
    assert "a second replica helped where it had CPU to take" in helps
    assert "the nginx hop alone cost 40% of the direct replica's TPS" in helps
    assert "machine's CPUs were 60% busy" in helps

    costs = " ".join(cluster_findings(_cluster(3000, 3000, 2000, 20000, 12000, 8000), COSTS))
    assert "load balancing costs: two replicas gave 0.67x (± 0.03) the TPS of one" in costs
    assert "did not help either path" in costs
    assert "micro-batches" in costs  # 333 us per request < 500 us per predict call
    assert "helps" not in costs
    assert "99% busy already, so the second replica finds no idle core" in costs

    idle = " ".join(cluster_findings(_cluster(3000, 3000, 2000, 20000, 12000, 8000, 50), COSTS))
    assert "did not help either path, although there was CPU to spare" in idle
    assert "no idle core" not in idle


def test_rows_findings_extrapolate_and_check_accuracy() -> None:
    table = [
        Row(
            k=k,
            rows=1000,
            correct=1000 if k < 49 else 700,
            seconds=0.01,
            bream_answers=700 if k < 49 else 1000,
            bream_rows=700,
        )
        for k in (1, 5, 15, 25, 49)
    ]
    per = PerRow(
        "seed", "seed server", [Slice(k, 100, 0.2, 2.0, 2.0, 3.0, 0) for k in (1, 5, 15, 25, 49)]
    )
    rows = RowsResult(rows=1000, seed=1, slice_size=100, per_row=[per], table=table)
    assert per.extrapolated_s(1000) == pytest.approx(10.0)  # 5 k x 1,000 rows x 2 ms
    assert rows.batch_seconds == pytest.approx(0.05)
    text = " ".join(rows_findings(rows))
    assert "5,000 requests would take 10.00 s; the batch endpoint is 200x faster" in text
    assert "k=25: 100.000% — every row right" in text
    assert "accuracy 70.000% equals the bream share of the rows, 70.000%" in text


def test_duration_reads_well() -> None:
    assert duration(12.345) == "12.35 s"
    assert duration(5956.0) == "5,956 s (1 h 39 min)"
    assert duration(float("nan")) == "n/a"


def test_options_shape_the_load() -> None:
    quick = SeedOptions(quick=True).validated()
    cfg = quick.load_config("http://127.0.0.1:9/")
    assert (cfg.processes, cfg.threads, cfg.users) == (2, 500, 1000)
    assert cfg.ks == LOAD_KS and cfg.duration_s == quick.load_seconds
    # ten steps of 100 users, the last one at 40 % of the run
    assert cfg.user_start_s(999) == pytest.approx(0.4 * quick.load_seconds)
    full = SeedOptions(duration_s=300.0, users=999)
    assert full.processes == 1 and full.threads == 999
    assert full.ramp_interval_s == 5.0  # never slower than the seed's steps
    assert SeedOptions(out=Path("docs/r.md")).chart_dir == Path("docs/r")
    for bad in (
        SeedOptions(users=1),
        SeedOptions(out=Path("r.txt")),
        SeedOptions(duration_s=0.5),
        SeedOptions(slice_requests=5),
    ):
        with pytest.raises(ConfigError):
            bad.validated()


def test_cli_rejects_bad_options_in_one_line(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["experiment", "seed", "--out", "report.txt"]) == 2
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "--out must be a .md file" in err


def test_generator_note_says_whether_the_users_were_held() -> None:
    held = _result(1000.0, users=100)
    text = generator_note([Load("a", "a", held)], 100)
    assert text.startswith("The generator held all 100 virtual users in every load")
    assert "the servers set the pace" in text
    held.warnings.append(
        "load worker 0 kept 95% of a CPU core busy: the generator may have "
        "set the pace, not the server"
    )
    assert "it may have set the pace (a worker near 100% CPU) in: a." in generator_note(
        [Load("a", "a", held)], 100
    )
    assert generator_note([Load("a", "a", held)], 200).startswith("Not every user started in: a")
