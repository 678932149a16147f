"""The Markdown report of one run: header, a section per experiment, warnings.

Every table is filled from the run's measurements and every finding comes
from :mod:`.findings`; the charts are drawn by :mod:`.charts` into the
directory next to the report (``docs/seed-report.md`` -> ``docs/seed-report/``)
and linked relative to it, so the report reads on GitHub as it is.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path

from fishpredict.experiment import charts, findings
from fishpredict.experiment.costs import COST_K, RequestCosts
from fishpredict.experiment.findings import n, ratio, x
from fishpredict.experiment.loads import Load
from fishpredict.experiment.options import SeedOptions
from fishpredict.experiment.rows import RowsResult
from fishpredict.fish.sweep import format_table
from fishpredict.perf.machine import header

TITLE = "The seed's four experiments, reproduced"

#: chart file names, one per experiment
CHARTS = {
    "seed": "1-unpickle-per-request.png",
    "backends": "2-backends.png",
    "cluster": "3-load-balancing.png",
    "rows": "4-100k-rows.png",
}


@dataclass
class SeedRun:
    """Everything one run measured, in the order it ran."""

    options: SeedOptions
    started: datetime
    costs: RequestCosts
    seed: list[Load] = field(default_factory=list)
    backends: list[Load] = field(default_factory=list)
    cluster: list[Load] = field(default_factory=list)
    rows: RowsResult | None = None
    seconds: float = math.nan
    #: the machine's 1-minute load average when the run began
    load_average: float = math.nan


def _table(head: Sequence[str], rows: Sequence[Sequence[str]]) -> list[str]:
    """A Markdown table; the first column left-aligned, the others right-aligned."""
    align = [":---"] + ["---:"] * (len(head) - 1)
    lines = ["| " + " | ".join(head) + " |", "| " + " | ".join(align) + " |"]
    lines += ["| " + " | ".join(r) + " |" for r in rows]
    return [*lines, ""]


def _load_row(ld: Load, *extra: str) -> list[str]:
    r = ld.result
    if r is None:
        return [ld.label, *["n/a"] * 8, *extra]
    return [
        ld.label,
        n(r.rps),
        n(ld.full_load_tps),
        n(r.peak_rps),
        n(ld.latency("mean"), 1),
        n(ld.latency("p50"), 1),
        n(ld.latency("p99"), 1),
        f"{r.requests:,}",
        f"{r.error_count:,}",
        *extra,
    ]


LOAD_HEAD = (
    "server",
    "TPS (run)",
    "TPS (all users on)",
    "peak TPS",
    "mean test time (ms)",
    "p50 (ms)",
    "p99 (ms)",
    "requests",
    "errors",
)


def _bullets(lines: Sequence[str]) -> list[str]:
    return [f"- {line}" for line in lines] + [""]


def _chart(name: str, alt: str, options: SeedOptions) -> list[str]:
    return [f"![{alt}]({options.chart_dir.name}/{CHARTS[name]})", ""]


def _header(run: SeedRun) -> list[str]:
    o = run.options
    machine = header(TITLE).splitlines()[1:]  # its own title line is ours
    return [
        f"# {TITLE}",
        "",
        f"Made by `{o.command}` on {run.started:%Y-%m-%d %H:%M} UTC in {n(run.seconds)} s "
        f"({'quick' if o.quick else 'full'} run). Every figure below comes from that one "
        "run on this machine; the findings are written from the figures.",
        "",
        "```text",
        *[line.removeprefix("# ") for line in machine],
        f"load average (1 min) when the run began: {n(run.load_average, 2)}",
        "```",
        "",
        "What the seed did (see SEED.md): a FastAPI server in Docker load-tested with nGrinder "
        "(1,000 virtual users = 10 processes x 100 threads, ramped up every 5 s), the model "
        "unpickled per request vs loaded once, two containers behind nginx, and 100,000 rows "
        "predicted one HTTP request at a time for five k. Here every server is a real process "
        "on loopback, started and stopped by the command, and the load comes from "
        "`fishpredict bench`.",
        "",
        f"**The load of experiments 1-3:** {o.describe_load()}. The generator runs on the same "
        f"{os.cpu_count() or 1} cores as the servers; its own CPU use is recorded and any "
        'warning it raised is listed at the end. "TPS (run)" is nGrinder\'s figure, successes '
        'over the whole run including the ramp-up and the drain; "TPS (all users on)" '
        "averages the seconds during which every user ran, and the findings use it. "
        + findings.generator_note(run.seed + run.backends + run.cluster, o.users),
        "",
    ]


def _seed_section(run: SeedRun) -> list[str]:
    c = run.costs
    out = ["## 1. The seed's server: unpickling per request vs loading once", ""]
    out += _table(LOAD_HEAD, [_load_row(ld) for ld in run.seed])
    out += [f"What one request's parts cost in this process (k = {COST_K}, best of 3 rounds):", ""]
    out += _table(
        ("part", "us per call"),
        [
            [
                "open + `pickle.load` of the model file (the seed's per-request load)",
                n(c.unpickle_us, 1),
            ],
            ["scikit-learn `predict([[length, weight]])`", n(c.sklearn_predict_us, 1)],
            ["fishpredict fast path, one row", n(c.fast_predict_us, 1)],
        ],
    )
    out += _chart("seed", "TPS over time, seed server per request vs load once", run.options)
    return out + _bullets(findings.seed_findings(run.seed, c))


def _backend_section(run: SeedRun) -> list[str]:
    out = [
        "## 2. fishpredict's backends next to the seed's server",
        "",
        "Each backend is `fishpredict serve --backend NAME` with its defaults (one process, "
        "fast path), under the same load as experiment 1. The seed rows are experiment 1's "
        "measurements.",
        "",
    ]
    base = next((ld for ld in run.seed if ld.key == "seed-load-once"), None)
    base_tps = base.full_load_tps if base is not None else math.nan
    rows = [_load_row(ld, x(ratio(ld.full_load_tps, base_tps))) for ld in run.seed + run.backends]
    out += _table((*LOAD_HEAD, "vs seed (load once)"), rows)
    out += _chart("backends", "TPS over time of every backend and the seed server", run.options)
    return out + _bullets(findings.backend_findings(run.seed, run.backends, run.costs))


def _cluster_section(run: SeedRun) -> list[str]:
    out = [
        "## 3. Load balancing: one replica vs two behind nginx",
        "",
        "`fishpredict.ops.cluster.Cluster` starts `socket` replicas on loopback and a real "
        "nginx in front (config rendered from the same template as "
        "`docker/nginx/default.conf`); the direct replica is the no-nginx reference. "
        "Same load as above.",
        "",
    ]
    direct = {ld.key.split("/")[0]: ld for ld in run.cluster if ld.key.endswith("/direct")}
    rows = []
    for ld in run.cluster:
        d = direct.get(ld.key.split("/")[0])
        busy = ld.result.machine_cpu_pct if ld.result is not None else None
        rows.append(
            _load_row(
                ld,
                x(ratio(ld.full_load_tps, d.full_load_tps if d is not None else math.nan)),
                "n/a" if busy is None else f"{busy:.0f}%",
            )
        )
    out += _table((*LOAD_HEAD, "vs direct", "machine CPU busy"), rows)
    out += _chart("cluster", "TPS and p99 of one and two replicas behind nginx", run.options)
    return out + _bullets(findings.cluster_findings(run.cluster, run.costs))


def _rows_section(rows: RowsResult, options: SeedOptions) -> list[str]:
    out = [
        f"## 4. {rows.rows:,} rows x k = {', '.join(map(str, rows.ks))}",
        "",
        f"The rows: {rows.rows:,} generated labelled fish (`fishpredict.fish.synth`, seed "
        f"{rows.seed}), independent draws from the distribution of the seed's "
        "10,000,000-row file. **One request per row** (the seed's way): "
        f"{rows.slice_size:,} sequential `GET /fish` requests per k and server over one "
        "keep-alive connection, rows drawn from the same data; the time for all "
        f"{rows.predictions:,} requests is **extrapolated** from each k's measured pace "
        "(sum over k of rows x seconds per request). **Batch:** `POST /predict` with all "
        f"{rows.rows:,} rows as `.npy`, one request per k, timed whole.",
        "",
    ]
    slice_rows = []
    for p in rows.per_row:
        for s in p.slices:
            slice_rows.append(
                [
                    p.label,
                    str(s.k),
                    f"{s.requests:,}",
                    n(s.seconds, 3),
                    n(s.seconds_per_request * 1e3, 3),
                    n(s.p50_ms, 3),
                    n(s.p99_ms, 3),
                    f"{s.errors:,}",
                ]
            )
    out += _table(
        (
            "server (one request per row)",
            "k",
            "requests",
            "seconds",
            "ms per request",
            "p50 (ms)",
            "p99 (ms)",
            "errors",
        ),
        slice_rows,
    )
    summary = []
    batch = rows.batch_seconds
    for p in rows.per_row:
        ext = p.extrapolated_s(rows.rows)
        summary.append(
            [
                f"{p.label}, one request per row",
                f"{p.requests:,} (slice)",
                n(p.seconds, 2),
                f"{n(ext, 1)} (extrapolated)",
                n(ratio(rows.predictions, ext)),
                x(ratio(ext, batch)),
            ]
        )
    summary.append(
        [
            "fishpredict POST /predict (.npy), all rows per k",
            f"{len(rows.table)}",
            n(batch, 3),
            f"{n(batch, 3)} (measured)",
            n(ratio(rows.predictions, batch)),
            x(1.0),
        ]
    )
    out += _table(
        (
            "way",
            "requests measured",
            "seconds measured",
            f"seconds for {rows.predictions:,} predictions",
            "predictions/s",
            "slower than batch",
        ),
        summary,
    )
    out += [
        "Accuracy of the batch answers (`fishpredict.fish.sweep.format_table`):",
        "",
        "```text",
        format_table(rows.table),
        "```",
        "",
    ]
    out += _chart("rows", "Seconds for the 500,000 predictions, and accuracy per k", options)
    return out + _bullets(findings.rows_findings(rows))


def _warnings(run: SeedRun) -> list[str]:
    out = ["## Warnings from the load generator", ""]
    lines = [
        f"{ld.label}: {w}"
        for ld in run.seed + run.backends + run.cluster
        if ld.result is not None
        for w in ld.result.warnings
    ]
    return out + (_bullets(lines) if lines else ["None.", ""])


def render(run: SeedRun) -> str:
    """The report's Markdown text."""
    out = _header(run) + _seed_section(run) + _backend_section(run) + _cluster_section(run)
    if run.rows is not None:
        out += _rows_section(run.rows, run.options)
    out += _warnings(run)
    return "\n".join(out).rstrip() + "\n"


def draw_charts(run: SeedRun) -> list[Path]:
    """Draw every chart into ``options.chart_dir``; the paths written."""
    d = run.options.chart_dir
    users = run.options.users
    paths = [d / CHARTS["seed"], d / CHARTS["backends"], d / CHARTS["cluster"]]
    charts.load_chart(
        run.seed,
        f"1. The seed's server under {users:,} users: unpickle per request vs load once",
        paths[0],
    )
    charts.load_chart(
        run.seed + run.backends,
        f"2. fishpredict backends and the seed server, {users:,} users",
        paths[1],
    )
    charts.cluster_chart(
        run.cluster, f"3. One vs two replicas behind nginx, {users:,} users", paths[2]
    )
    if run.rows is not None:
        paths.append(d / CHARTS["rows"])
        charts.rows_chart(
            run.rows,
            f"4. {run.rows.predictions:,} predictions: one request per row vs the batch endpoint",
            paths[3],
        )
    return paths
